//! --serve: a CONNECT-IP endpoint on quinn + rustls, for zgate's client
//! side (zgate-probe, zgate-agent) to meet a server that is not its own.
//! It requires a client certificate from --ca, offers only ALPN h3,
//! sends SETTINGS with ENABLE_CONNECT_PROTOCOL and H3_DATAGRAM, checks
//! the request's pseudo-header fields (those not Huffman-coded), answers
//! 200 with capsule-protocol, assigns 10.99.0.2/32 (unsolicited, request
//! ID 0, and again for each ADDRESS_REQUEST with its ID), advertises
//! 192.0.2.0/24 for any protocol and answers ICMP echo requests sent as
//! HTTP datagrams. Events go to stdout, one line each.

use crate::*;

const ADDR: [u8; 4] = [10, 99, 0, 2];

/// Decodes an HPACK/QPACK Huffman string (RFC 7541 §5.2, Appendix B)
/// made of printable ASCII. The code is canonical (codes of one length
/// follow each other in symbol order, each length starting where the one
/// before ended, shifted), so the code lengths of the symbols define it:
/// here every symbol of 5 to 15 bits, which covers printable ASCII but
/// the backslash. None for anything else (or bad padding).
fn huffman(b: &[u8]) -> Option<String> {
    const BY_LEN: [(u32, &[u8]); 11] = [
        (5, b"012aceiost"),
        (6, b" %-./3456789=A_bdfghlmnpru"),
        (7, b":BCDEFGHIJKLMNOPQRSTUVWYjkqvwxyz"),
        (8, b"&*,;XZ"),
        (9, b""),
        (10, b"!\"()?"),
        (11, b"'+|"),
        (12, b"#>"),
        (13, b"\0$@[]~"),
        (14, b"^}"),
        (15, b"<`{"),
    ];
    let mut first = [0u32; 16];
    let mut code = 0u32;
    for (len, syms) in BY_LEN.iter() {
        first[*len as usize] = code;
        code = (code + syms.len() as u32) << 1;
    }
    let mut out = String::new();
    let (mut cur, mut n) = (0u32, 0u32);
    for byte in b {
        for k in (0..8).rev() {
            cur = (cur << 1) | ((*byte as u32 >> k) & 1);
            n += 1;
            if n < 5 {
                continue;
            }
            if n > 15 {
                return None;
            }
            let syms = BY_LEN.iter().find(|(l, _)| *l == n).map(|(_, s)| *s).unwrap_or(b"");
            if cur >= first[n as usize] && cur - first[n as usize] < syms.len() as u32 {
                out.push(syms[(cur - first[n as usize]) as usize] as char);
                cur = 0;
                n = 0;
            }
        }
    }
    // what is left must be padding: fewer than 8 bits, all ones (EOS prefix)
    if n >= 8 || cur != (1u32 << n) - 1 {
        return None;
    }
    Some(out)
}

/// The field lines of a request: (name, value); a Huffman-coded string
/// this endpoint cannot decode reads "<huffman>".
fn field_lines(b: &[u8]) -> Option<Vec<(String, String)>> {
    // the static-table entries a request uses (RFC 9204 Appendix A)
    fn stat(i: u64) -> (&'static str, &'static str) {
        match i {
            0 => (":authority", ""),
            1 => (":path", "/"),
            15 => (":method", "CONNECT"),
            16 => (":method", "DELETE"),
            17 => (":method", "GET"),
            18 => (":method", "HEAD"),
            19 => (":method", "OPTIONS"),
            20 => (":method", "POST"),
            21 => (":method", "PUT"),
            22 => (":scheme", "http"),
            23 => (":scheme", "https"),
            _ => ("<static>", ""),
        }
    }
    fn string(b: &[u8], p: &mut usize, bits: u32) -> Option<String> {
        let huff = b.get(*p)? & (1 << bits) != 0;
        let n = get_prefint(b, p, bits)? as usize;
        let v = b.get(*p..*p + n)?;
        *p += n;
        Some(if huff {
            huffman(v).unwrap_or_else(|| "<huffman>".into())
        } else {
            String::from_utf8_lossy(v).into_owned()
        })
    }
    let mut out = Vec::new();
    let mut p = 0;
    if get_prefint(b, &mut p, 8)? != 0 {
        return None; // a dynamic table was never offered
    }
    get_prefint(b, &mut p, 7)?;
    while p < b.len() {
        let c = b[p];
        if c & 0x80 != 0 {
            if c & 0x40 == 0 {
                return None;
            }
            let (n, v) = stat(get_prefint(b, &mut p, 6)?);
            out.push((n.to_string(), v.to_string()));
        } else if c & 0x40 != 0 {
            if c & 0x10 == 0 {
                return None;
            }
            let (n, _) = stat(get_prefint(b, &mut p, 4)?);
            out.push((n.to_string(), string(b, &mut p, 7)?));
        } else if c & 0x20 != 0 {
            let n = string(b, &mut p, 3)?;
            out.push((n, string(b, &mut p, 7)?));
        } else {
            return None;
        }
    }
    Some(out)
}

fn assign(id: u64) -> Vec<u8> {
    let mut v = Vec::new();
    put_varint(&mut v, id);
    v.push(4);
    v.extend_from_slice(&ADDR);
    v.push(32);
    capsule(0x01, &v)
}

async fn session(conn: quinn::Connection) -> Result<(), String> {
    let alpn = negotiated_alpn(&conn);
    let certs = conn
        .peer_identity()
        .and_then(|c| c.downcast::<Vec<rustls::Certificate>>().ok())
        .map_or(0, |c| c.len());
    println!("connection: ALPN {}, client certificates {}", alpn, certs);
    let mut ctl = conn.open_uni().await.map_err(|e| e.to_string())?;
    // QPACK 0/0, ENABLE_CONNECT_PROTOCOL 1 (RFC 8441 §3), H3_DATAGRAM 1
    ctl.write_all(&control_stream(&[(0x01, 0), (0x07, 0), (0x08, 1), (0x33, 1)]))
        .await
        .map_err(|e| e.to_string())?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(serve_uni(conn.clone(), tx));

    let (mut send, recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
    let qsid = quinn::VarInt::from(send.id()).into_inner() / 4;
    let mut rd = Rd { s: recv, buf: Vec::new() };
    let hdr = loop {
        let (t, p) = rd.frame().await?;
        if t == 0x01 {
            break p;
        }
    };
    let fields = field_lines(&hdr).ok_or("a request field section this endpoint cannot read")?;
    let shown: Vec<String> = fields.iter().map(|(n, v)| format!("{}: {}", n, v)).collect();
    println!("request: {}", shown.join(", "));
    let has = |n: &str, v: &str| fields.iter().any(|(a, b)| a == n && b == v);
    let mut bad = Vec::new();
    for (n, v) in [
        (":method", "CONNECT"),
        (":protocol", "connect-ip"),
        (":scheme", "https"),
        ("capsule-protocol", "?1"),
    ] {
        if !has(n, v) {
            bad.push(format!("{}: {}", n, v));
        }
    }
    if !fields.iter().any(|(n, _)| n == ":authority") || !fields.iter().any(|(n, _)| n == ":path") {
        bad.push(":authority and :path".into());
    }
    // the client's SETTINGS must have come with H3_DATAGRAM=1 (RFC 9297 §2.1.1)
    let cs = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let dg = cs.iter().any(|&(k, v)| k == 0x33 && v == 1);
    println!("client settings: H3_DATAGRAM={}", if dg { 1 } else { 0 });
    if !dg {
        bad.push("SETTINGS_H3_DATAGRAM=1".into());
    }
    if !bad.is_empty() {
        let mut h = vec![0u8, 0u8];
        put_prefint(&mut h, 0xc0, 6, 67); // :status 400
        send.write_all(&frame(0x01, &h)).await.map_err(|e| e.to_string())?;
        let _ = send.finish().await;
        return Err(format!("request refused (400), missing: {}", bad.join("; ")));
    }
    let mut h = vec![0u8, 0u8];
    put_prefint(&mut h, 0xc0, 6, 25); // :status 200
    lit_lit(&mut h, "capsule-protocol", "?1");
    send.write_all(&frame(0x01, &h)).await.map_err(|e| e.to_string())?;
    let mut out = assign(0);
    let mut r = vec![4u8];
    r.extend_from_slice(&[192, 0, 2, 0, 192, 0, 2, 255, 0]);
    out.extend_from_slice(&capsule(0x03, &r));
    send.write_all(&out).await.map_err(|e| e.to_string())?;
    println!("response: 200, ADDRESS_ASSIGN 10.99.0.2/32, ROUTE_ADVERTISEMENT 192.0.2.0-192.0.2.255");

    // ICMP echo over datagrams, capsules on the stream, both until the end
    let dconn = conn.clone();
    tokio::spawn(async move {
        let mut n = 0u64;
        while let Ok(b) = dconn.read_datagram().await {
            let mut p = 0;
            let (q, ctx) = match (get_varint(&b, &mut p), get_varint(&b, &mut p)) {
                (Some(q), Some(c)) => (q, c),
                _ => continue,
            };
            let ip = &b[p..];
            if q != qsid || ctx != 0 || ip.len() < 28 || ip[0] != 0x45 || ip[9] != 1 || ip[20] != 8 {
                continue;
            }
            if ip[12..16] != ADDR {
                println!("datagram from {:?}: not the assigned address, dropped", &ip[12..16]);
                continue;
            }
            let src = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
            let mut m = ip[20..].to_vec();
            m[0] = 0;
            m[2] = 0;
            m[3] = 0;
            let c = csum(&m, 0);
            m[2] = (c >> 8) as u8;
            m[3] = c as u8;
            let reply = ipv4(src, Ipv4Addr::from(ADDR), 1, &m);
            let mut d = Vec::new();
            put_varint(&mut d, qsid);
            put_varint(&mut d, 0);
            d.extend_from_slice(&reply);
            if dconn.send_datagram(Bytes::from(d)).is_ok() {
                n += 1;
                println!("echo reply {} to {}", n, src);
            }
        }
    });
    let mut caps: Vec<u8> = Vec::new();
    loop {
        let (t, p) = match rd.frame().await {
            Ok(f) => f,
            Err(e) => {
                println!("request stream: {}", e);
                return Ok(());
            }
        };
        if t != 0x00 {
            continue;
        }
        caps.extend_from_slice(&p);
        while let Some((ct, v)) = next_capsule(&mut caps) {
            let n = v.len();
            if ct == 0x02 {
                let mut j = 0;
                let id = get_varint(&v, &mut j).unwrap_or(0);
                println!("ADDRESS_REQUEST: request {} ({} bytes)", id, v.len());
                send.write_all(&assign(id)).await.map_err(|e| e.to_string())?;
            } else {
                println!("capsule 0x{:x}: {} bytes", ct, n);
            }
        }
    }
}

pub async fn serve(listen: SocketAddr, cert: &str, key: &str, ca: &str) {
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(ca) {
        roots.add(&c).unwrap_or_else(|e| die("ca", e));
    }
    let mut tls = rustls::ServerConfig::builder()
        .with_safe_defaults()
        .with_client_cert_verifier(rustls::server::AllowAnyAuthenticatedClient::new(roots))
        .with_single_cert(load_certs(cert), load_key(key))
        .unwrap_or_else(|e| die("server certificate", e));
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(tls));
    let mut tc = quinn::TransportConfig::default();
    tc.datagram_receive_buffer_size(Some(1 << 20));
    cfg.transport_config(Arc::new(tc));
    let ep = quinn::Endpoint::server(cfg, listen).unwrap_or_else(|e| die("listen", e));
    println!("listening on {}", ep.local_addr().map(|a| a.to_string()).unwrap_or_default());
    while let Some(connecting) = ep.accept().await {
        tokio::spawn(async move {
            match connecting.await {
                Ok(conn) => {
                    if let Err(e) = session(conn).await {
                        println!("session: {}", e);
                    }
                }
                Err(e) => println!("handshake refused: {}", e),
            }
        });
    }
}
