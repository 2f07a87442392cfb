//! zgate-interop-quinn: a CONNECT-IP client (RFC 9484) on quinn + rustls,
//! to check zgate-relay against a QUIC and TLS implementation that is not
//! its own. HTTP/3 (RFC 9114), QPACK with the static table only (RFC
//! 9204), HTTP datagrams and capsules (RFC 9297) and the CONNECT-IP
//! capsules are written here from the RFCs.
//!
//! What it does, printing one line per step (the e2e test reads them):
//! handshake (ALPN h3, mutual TLS), SETTINGS both ways, the extended
//! CONNECT, ADDRESS_REQUEST / ADDRESS_ASSIGN, ROUTE_ADVERTISEMENT, then
//! an ICMP echo and a UDP datagram through the tunnel as HTTP datagrams,
//! and a clean close (H3_NO_ERROR). Exit 0 when every step worked, 1
//! with the step that failed, 2 on bad usage.

mod server;

use bytes::Bytes;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: zgate-interop-quinn --relay ADDR:PORT --server-name NAME --cert PEM \
--key PEM --ca PEM [--alpn PROTO] [--path PATH] [--ping IPV4] [--udp IPV4:PORT] [--stray] \
[--key-updates N] [--chacha20]\n\
       zgate-interop-quinn --serve ADDR:PORT --cert PEM --key PEM --ca PEM\n\
  --alpn         ALPN protocol to offer (default h3)\n\
  --path         request path (default /.well-known/masque/ip/*/*/)\n\
  --ping         send an ICMP echo there through the tunnel and wait for the reply\n\
  --udp          send a UDP datagram there through the tunnel and wait for it to come back\n\
  --stray        first send datagrams the relay must drop (context ID 1; a stream that is\n\
                 no CONNECT-IP request), then ping (C12, C14)\n\
  --key-updates  after the ping, N times: a QUIC key update, then a ping in the new phase\n\
  --chacha20     offer only TLS_CHACHA20_POLY1305_SHA256 (so the connection uses it)\n\
  --serve        be the server instead: a CONNECT-IP endpoint (client certificate required,\n\
                 from --ca) that assigns 10.99.0.2/32, advertises 192.0.2.0/24 and answers\n\
                 ICMP echo requests; one line per event on stdout";

fn die(step: &str, msg: impl std::fmt::Display) -> ! {
    println!("FAILED {}: {}", step, msg);
    std::process::exit(1)
}

struct Args {
    relay: SocketAddr,
    server_name: String,
    cert: String,
    key: String,
    ca: String,
    alpn: String,
    path: String,
    ping: Option<Ipv4Addr>,
    udp: Option<(Ipv4Addr, u16)>,
    stray: bool,
    chacha20: bool,
    key_updates: u32,
}

fn parse_args() -> Args {
    let mut m: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--help" || a == "-h" {
            println!("{}", USAGE);
            std::process::exit(0);
        }
        if a == "--stray" || a == "--chacha20" {
            m.insert(a, String::new());
            continue;
        }
        let known = [
            "--relay", "--server-name", "--cert", "--key", "--ca", "--alpn", "--path", "--ping",
            "--udp", "--key-updates",
        ];
        if !known.contains(&a.as_str()) {
            eprintln!("zgate-interop-quinn: unknown option {}\n{}", a, USAGE);
            std::process::exit(2);
        }
        match it.next() {
            Some(v) => {
                m.insert(a, v);
            }
            None => {
                eprintln!("zgate-interop-quinn: {} needs a value\n{}", a, USAGE);
                std::process::exit(2);
            }
        }
    }
    let need = |k: &str| -> String {
        match m.get(k) {
            Some(v) => v.clone(),
            None => {
                eprintln!("zgate-interop-quinn: {} is required\n{}", k, USAGE);
                std::process::exit(2)
            }
        }
    };
    let bad = |k: &str, v: &str| -> ! {
        eprintln!("zgate-interop-quinn: {} {}: not valid\n{}", k, v, USAGE);
        std::process::exit(2)
    };
    let relay_s = need("--relay");
    let relay = relay_s.parse().unwrap_or_else(|_| bad("--relay", &relay_s));
    let ping = m
        .get("--ping")
        .map(|v| v.parse().unwrap_or_else(|_| bad("--ping", v)));
    let udp = m.get("--udp").map(|v| match v.parse::<std::net::SocketAddrV4>() {
        Ok(s) => (*s.ip(), s.port()),
        Err(_) => bad("--udp", v),
    });
    Args {
        relay,
        server_name: need("--server-name"),
        cert: need("--cert"),
        key: need("--key"),
        ca: need("--ca"),
        alpn: m.get("--alpn").cloned().unwrap_or_else(|| "h3".into()),
        path: m
            .get("--path")
            .cloned()
            .unwrap_or_else(|| "/.well-known/masque/ip/*/*/".into()),
        ping,
        udp,
        stray: m.contains_key("--stray"),
        chacha20: m.contains_key("--chacha20"),
        key_updates: m.get("--key-updates").map_or(0, |v| {
            v.parse().ok().filter(|n| *n <= 100).unwrap_or_else(|| bad("--key-updates", v))
        }),
    }
}

// ------------------------------------------------------------ encodings

fn put_varint(v: &mut Vec<u8>, x: u64) {
    if x < 1 << 6 {
        v.push(x as u8)
    } else if x < 1 << 14 {
        v.extend_from_slice(&(x as u16 | 0x4000).to_be_bytes())
    } else if x < 1 << 30 {
        v.extend_from_slice(&(x as u32 | 0x8000_0000).to_be_bytes())
    } else {
        v.extend_from_slice(&(x | 0xc000_0000_0000_0000).to_be_bytes())
    }
}

fn get_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *b.get(*pos)?;
    let len = 1usize << (first >> 6);
    if *pos + len > b.len() {
        return None;
    }
    let mut x = (first & 0x3f) as u64;
    for i in 1..len {
        x = (x << 8) | b[*pos + i] as u64;
    }
    *pos += len;
    Some(x)
}

/// QPACK/HPACK prefixed integer (RFC 9204 §4.1.1, RFC 7541 §5.1).
fn put_prefint(v: &mut Vec<u8>, first: u8, bits: u32, x: u64) {
    let max = (1u64 << bits) - 1;
    if x < max {
        v.push(first | x as u8);
        return;
    }
    v.push(first | max as u8);
    let mut x = x - max;
    while x >= 128 {
        v.push((x % 128) as u8 | 0x80);
        x /= 128;
    }
    v.push(x as u8);
}

fn get_prefint(b: &[u8], pos: &mut usize, bits: u32) -> Option<u64> {
    let max = (1u64 << bits) - 1;
    let mut x = (*b.get(*pos)? as u64) & max;
    *pos += 1;
    if x < max {
        return Some(x);
    }
    let mut shift = 0;
    loop {
        let c = *b.get(*pos)?;
        *pos += 1;
        x += ((c & 0x7f) as u64) << shift;
        if c & 0x80 == 0 {
            return Some(x);
        }
        shift += 7;
        if shift > 56 {
            return None;
        }
    }
}

/// A field line with a name from the static table and a literal value.
fn lit_ref(v: &mut Vec<u8>, idx: u64, val: &str) {
    put_prefint(v, 0x50, 4, idx);
    put_prefint(v, 0x00, 7, val.len() as u64);
    v.extend_from_slice(val.as_bytes());
}

/// A field line with a literal name and value (no Huffman).
fn lit_lit(v: &mut Vec<u8>, name: &str, val: &str) {
    put_prefint(v, 0x20, 3, name.len() as u64);
    v.extend_from_slice(name.as_bytes());
    put_prefint(v, 0x00, 7, val.len() as u64);
    v.extend_from_slice(val.as_bytes());
}

/// An HTTP/3 frame (RFC 9114 §7.1): type, length, payload.
fn frame(t: u64, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    put_varint(&mut f, t);
    put_varint(&mut f, payload.len() as u64);
    f.extend_from_slice(payload);
    f
}

/// The start of a control stream (RFC 9114 §6.2.1): its type, then a
/// SETTINGS frame with these (identifier, value) pairs.
fn control_stream(settings: &[(u64, u64)]) -> Vec<u8> {
    let mut s = Vec::new();
    for &(k, v) in settings {
        put_varint(&mut s, k);
        put_varint(&mut s, v);
    }
    let mut c = vec![0x00]; // control stream
    c.extend_from_slice(&frame(0x04, &s)); // SETTINGS
    c
}

/// The extended CONNECT (RFC 9220 / 9484 §3) as one HEADERS frame.
fn request_headers(authority: &str, path: &str) -> Vec<u8> {
    let mut f = vec![0u8, 0u8]; // Required Insert Count 0, Base 0
    put_prefint(&mut f, 0xc0, 6, 15); // :method CONNECT (static 15)
    lit_lit(&mut f, ":protocol", "connect-ip");
    put_prefint(&mut f, 0xc0, 6, 23); // :scheme https (static 23)
    lit_ref(&mut f, 0, authority); // :authority
    lit_ref(&mut f, 1, path); // :path
    lit_lit(&mut f, "capsule-protocol", "?1");
    frame(0x01, &f) // HEADERS
}

/// :status from a response field section: the server may encode it as a
/// static-table entry (what every :status it sends has) or as a literal
/// with a static name and a plain value.
fn response_status(b: &[u8]) -> Option<u16> {
    const STATUS: [(u64, u16); 14] = [
        (24, 103), (25, 200), (26, 304), (27, 404), (28, 503), (63, 100), (64, 204), (65, 206),
        (66, 302), (67, 400), (68, 403), (69, 421), (70, 425), (71, 500),
    ];
    let mut p = 0;
    get_prefint(b, &mut p, 8)?; // Required Insert Count
    get_prefint(b, &mut p, 7)?; // Base
    while p < b.len() {
        let c = b[p];
        if c & 0x80 != 0 {
            let is_static = c & 0x40 != 0;
            let idx = get_prefint(b, &mut p, 6)?;
            if is_static {
                if let Some(&(_, s)) = STATUS.iter().find(|(i, _)| *i == idx) {
                    return Some(s);
                }
            }
        } else if c & 0x40 != 0 {
            let is_static = c & 0x10 != 0;
            let idx = get_prefint(b, &mut p, 4)?;
            let huff = b.get(p)? & 0x80 != 0;
            let n = get_prefint(b, &mut p, 7)? as usize;
            let val = b.get(p..p + n)?;
            p += n;
            if is_static && !huff && STATUS.iter().any(|(i, _)| *i == idx) {
                return std::str::from_utf8(val).ok()?.parse().ok();
            }
        } else if c & 0x20 != 0 {
            let n = get_prefint(b, &mut p, 3)? as usize;
            p += n;
            let n = get_prefint(b, &mut p, 7)? as usize;
            p += n;
        } else {
            return None; // post-base forms: no dynamic table here
        }
    }
    None
}

fn csum(data: &[u8], init: u32) -> u16 {
    let mut s = init;
    for ch in data.chunks(2) {
        let w = if ch.len() == 2 { (ch[0] as u32) << 8 | ch[1] as u32 } else { (ch[0] as u32) << 8 };
        s += w;
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut h = vec![0x45, 0, (total >> 8) as u8, total as u8, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0];
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = csum(&h, 0);
    h[10] = (c >> 8) as u8;
    h[11] = c as u8;
    h.extend_from_slice(payload);
    h
}

fn icmp_echo(src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0, (id >> 8) as u8, id as u8, (seq >> 8) as u8, seq as u8];
    m.extend_from_slice(data);
    let c = csum(&m, 0);
    m[2] = (c >> 8) as u8;
    m[3] = c as u8;
    ipv4(src, dst, 1, &m)
}

fn udp4(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, data: &[u8]) -> Vec<u8> {
    let len = 8 + data.len();
    let mut u = vec![
        (sport >> 8) as u8, sport as u8, (dport >> 8) as u8, dport as u8, (len >> 8) as u8,
        len as u8, 0, 0,
    ];
    u.extend_from_slice(data);
    let mut ph = Vec::new();
    ph.extend_from_slice(&src.octets());
    ph.extend_from_slice(&dst.octets());
    ph.extend_from_slice(&[0, 17, (len >> 8) as u8, len as u8]);
    ph.extend_from_slice(&u);
    let mut c = csum(&ph, 0);
    if c == 0 {
        c = 0xffff;
    }
    u[6] = (c >> 8) as u8;
    u[7] = c as u8;
    ipv4(src, dst, 17, &u)
}

// ------------------------------------------------------------ streams

/// A buffered reader of one QUIC stream: varints and exact byte counts.
struct Rd {
    s: quinn::RecvStream,
    buf: Vec<u8>,
}

impl Rd {
    async fn fill(&mut self, n: usize) -> Result<(), String> {
        let mut tmp = [0u8; 4096];
        while self.buf.len() < n {
            match self.s.read(&mut tmp).await {
                Ok(Some(k)) => self.buf.extend_from_slice(&tmp[..k]),
                Ok(None) => return Err("stream ended".into()),
                Err(e) => return Err(format!("{}", e)),
            }
        }
        Ok(())
    }
    async fn varint(&mut self) -> Result<u64, String> {
        self.fill(1).await?;
        let len = 1usize << (self.buf[0] >> 6);
        self.fill(len).await?;
        let mut p = 0;
        let x = get_varint(&self.buf, &mut p).ok_or("bad varint")?;
        self.buf.drain(..p);
        Ok(x)
    }
    async fn bytes(&mut self, n: usize) -> Result<Vec<u8>, String> {
        self.fill(n).await?;
        Ok(self.buf.drain(..n).collect())
    }
    /// The next HTTP/3 frame: (type, payload).
    async fn frame(&mut self) -> Result<(u64, Vec<u8>), String> {
        let t = self.varint().await?;
        let n = self.varint().await? as usize;
        if n > 1 << 20 {
            return Err(format!("frame of {} bytes", n));
        }
        Ok((t, self.bytes(n).await?))
    }
}

/// The server's unidirectional streams: its control stream's SETTINGS go
/// to tx; every stream is kept open and read to the end (closing the
/// read side of a critical stream would be a connection error).
async fn serve_uni(conn: quinn::Connection, tx: tokio::sync::mpsc::Sender<Vec<(u64, u64)>>) {
    while let Ok(s) = conn.accept_uni().await {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut rd = Rd { s, buf: Vec::new() };
            let ty = match rd.varint().await {
                Ok(t) => t,
                Err(_) => return,
            };
            if ty == 0x00 {
                if let Ok((0x04, p)) = rd.frame().await {
                    let mut v = Vec::new();
                    let mut i = 0;
                    while i < p.len() {
                        match (get_varint(&p, &mut i), get_varint(&p, &mut i)) {
                            (Some(k), Some(x)) => v.push((k, x)),
                            _ => break,
                        }
                    }
                    let _ = tx.send(v).await;
                }
            }
            let mut tmp = [0u8; 1024];
            while let Ok(Some(_)) = rd.s.read(&mut tmp).await {}
        });
    }
}

fn load_certs(path: &str) -> Vec<rustls::Certificate> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| die("certificates", format!("{}: {}", path, e)));
    let v = rustls_pemfile::certs(&mut std::io::BufReader::new(f))
        .unwrap_or_else(|e| die("certificates", format!("{}: {}", path, e)));
    if v.is_empty() {
        die("certificates", format!("{}: no certificate", path));
    }
    v.into_iter().map(rustls::Certificate).collect()
}

fn load_key(path: &str) -> rustls::PrivateKey {
    let f = std::fs::File::open(path).unwrap_or_else(|e| die("key", format!("{}: {}", path, e)));
    let mut v = rustls_pemfile::pkcs8_private_keys(&mut std::io::BufReader::new(f))
        .unwrap_or_else(|e| die("key", format!("{}: {}", path, e)));
    if v.is_empty() {
        die("key", format!("{}: no PKCS#8 private key", path));
    }
    rustls::PrivateKey(v.remove(0))
}

/// The ALPN protocol the handshake settled on ("" if none).
fn negotiated_alpn(conn: &quinn::Connection) -> String {
    conn.handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|h| h.protocol)
        .map(|p| String::from_utf8_lossy(&p).into_owned())
        .unwrap_or_default()
}

/// Takes the first whole capsule (RFC 9297 §3.2) off buf: (type, value).
fn next_capsule(buf: &mut Vec<u8>) -> Option<(u64, Vec<u8>)> {
    let mut i = 0;
    let t = get_varint(buf, &mut i)?;
    let n = get_varint(buf, &mut i)? as usize;
    if buf.len() < i + n {
        return None;
    }
    let v = buf[i..i + n].to_vec();
    buf.drain(..i + n);
    Some((t, v))
}

/// A capsule (RFC 9297 §3.2, same encoding as a frame) in a DATA frame.
fn capsule(t: u64, body: &[u8]) -> Vec<u8> {
    frame(0x00, &frame(t, body))
}

/// Sends pkt as an HTTP datagram of the request (context ID 0) until a
/// datagram for which want() is true comes back; 3 tries, 1 s apart.
async fn round_trip(
    conn: &quinn::Connection,
    qsid: u64,
    pkt: &[u8],
    want: impl Fn(&[u8]) -> bool,
) -> Result<Duration, String> {
    let mut d = Vec::new();
    put_varint(&mut d, qsid);
    put_varint(&mut d, 0);
    d.extend_from_slice(pkt);
    let t0 = Instant::now();
    for _ in 0..3 {
        conn.send_datagram(Bytes::from(d.clone())).map_err(|e| format!("send: {}", e))?;
        let until = Instant::now() + Duration::from_secs(1);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, conn.read_datagram()).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(format!("{}", e)),
                Ok(Ok(b)) => {
                    let mut p = 0;
                    let q = get_varint(&b, &mut p);
                    let ctx = get_varint(&b, &mut p);
                    if q == Some(qsid) && ctx == Some(0) && want(&b[p..]) {
                        return Ok(t0.elapsed());
                    }
                }
            }
        }
    }
    Err("no answer in 3 s".into())
}

/// --serve ADDR:PORT --cert --key --ca (see server.rs)
fn serve_args() -> Option<(SocketAddr, String, String, String)> {
    let v: Vec<String> = std::env::args().skip(1).collect();
    let i = v.iter().position(|a| a == "--serve")?;
    let get = |k: &str| -> String {
        match v.iter().position(|a| a == k).and_then(|j| v.get(j + 1)) {
            Some(x) => x.clone(),
            None => {
                eprintln!("zgate-interop-quinn: --serve needs {}\n{}", k, USAGE);
                std::process::exit(2)
            }
        }
    };
    let l = get("--serve");
    let listen = l.parse().unwrap_or_else(|_| {
        eprintln!("zgate-interop-quinn: --serve {}: not ADDR:PORT\n{}", l, USAGE);
        std::process::exit(2)
    });
    let _ = i;
    Some((listen, get("--cert"), get("--key"), get("--ca")))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Some((listen, cert, key, ca)) = serve_args() {
        server::serve(listen, &cert, &key, &ca).await;
        return;
    }
    let a = parse_args();

    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(&a.ca) {
        roots.add(&c).unwrap_or_else(|e| die("ca", e));
    }
    let suites: &[rustls::SupportedCipherSuite] = if a.chacha20 {
        &[rustls::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256]
    } else {
        rustls::DEFAULT_CIPHER_SUITES
    };
    let mut tls = rustls::ClientConfig::builder()
        .with_cipher_suites(suites)
        .with_safe_default_kx_groups()
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap_or_else(|e| die("TLS versions", e))
        .with_root_certificates(roots)
        .with_single_cert(load_certs(&a.cert), load_key(&a.key))
        .unwrap_or_else(|e| die("client certificate", e));
    tls.alpn_protocols = vec![a.alpn.as_bytes().to_vec()];
    let mut cfg = quinn::ClientConfig::new(Arc::new(tls));
    let mut tc = quinn::TransportConfig::default();
    tc.datagram_receive_buffer_size(Some(1 << 20));
    tc.max_idle_timeout(Some(quinn::VarInt::from_u32(10_000).into()));
    cfg.transport_config(Arc::new(tc));
    let mut ep = quinn::Endpoint::client("0.0.0.0:0".parse().unwrap())
        .unwrap_or_else(|e| die("socket", e));
    ep.set_default_client_config(cfg);

    let conn = match ep.connect(a.relay, &a.server_name) {
        Ok(c) => c.await.unwrap_or_else(|e| die("handshake", e)),
        Err(e) => die("handshake", e),
    };
    let alpn = negotiated_alpn(&conn);
    println!("handshake: ok, ALPN {}, peer {}", alpn, a.relay);

    // our control stream first (RFC 9114 §6.2.1), then theirs
    let mut ctl = conn.open_uni().await.unwrap_or_else(|e| die("control stream", e));
    // QPACK_MAX_TABLE_CAPACITY 0, QPACK_BLOCKED_STREAMS 0, H3_DATAGRAM 1 (RFC 9297)
    ctl.write_all(&control_stream(&[(0x01, 0), (0x07, 0), (0x33, 1)]))
        .await
        .unwrap_or_else(|e| die("control stream", e));
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(serve_uni(conn.clone(), tx));
    let settings = match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(v)) => v,
        _ => die("settings", "no SETTINGS from the server in 5 s"),
    };
    let get = |k: u64| settings.iter().find(|(i, _)| *i == k).map(|(_, v)| *v);
    println!(
        "settings: ENABLE_CONNECT_PROTOCOL={} H3_DATAGRAM={}",
        get(0x08).map_or("absent".into(), |v| v.to_string()),
        get(0x33).map_or("absent".into(), |v| v.to_string())
    );
    if get(0x08) != Some(1) || get(0x33) != Some(1) {
        die("settings", "the server must send ENABLE_CONNECT_PROTOCOL=1 and H3_DATAGRAM=1");
    }

    // the request
    let (mut send, recv) = conn.open_bi().await.unwrap_or_else(|e| die("request", e));
    let qsid = quinn::VarInt::from(send.id()).into_inner() / 4;
    let authority = format!("{}:{}", a.server_name, a.relay.port());
    send.write_all(&request_headers(&authority, &a.path))
        .await
        .unwrap_or_else(|e| die("request", e));
    let mut rd = Rd { s: recv, buf: Vec::new() };
    let status = loop {
        match rd.frame().await {
            Ok((0x01, p)) => match response_status(&p) {
                Some(s) if (100..200).contains(&s) => continue,
                Some(s) => break s,
                None => die("response", "no :status in the HEADERS"),
            },
            Ok(_) => continue, // reserved frame types are skipped (RFC 9114 §7.2.8)
            Err(e) => die("response", e),
        }
    };
    println!("response: {}", status);
    if status != 200 {
        conn.close(quinn::VarInt::from_u32(0x100), b"");
        ep.wait_idle().await;
        std::process::exit(if status >= 400 { 3 } else { 1 });
    }

    // ADDRESS_REQUEST for any IPv4 address, request ID 1 (RFC 9484 §4.7.1)
    let mut req = Vec::new();
    put_varint(&mut req, 1);
    req.extend_from_slice(&[4, 0, 0, 0, 0, 0]);
    send.write_all(&capsule(0x02, &req)).await.unwrap_or_else(|e| die("address request", e));

    // capsules until an address for request 1 and the routes have come
    let mut caps: Vec<u8> = Vec::new();
    let mut addr: Option<Ipv4Addr> = None;
    let mut routes = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while addr.is_none() || !routes {
        let left = deadline.saturating_duration_since(Instant::now());
        let (t, p) = match tokio::time::timeout(left, rd.frame()).await {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => die("capsules", e),
            Err(_) => die("capsules", "no ADDRESS_ASSIGN and ROUTE_ADVERTISEMENT in 5 s"),
        };
        if t != 0x00 {
            continue;
        }
        caps.extend_from_slice(&p);
        while let Some((ct, v)) = next_capsule(&mut caps) {
            let n = v.len();
            let mut j = 0;
            match ct {
                0x01 => {
                    while j < v.len() {
                        let id = get_varint(&v, &mut j).unwrap_or_else(|| die("capsules", "bad ADDRESS_ASSIGN"));
                        let ver = v[j];
                        let alen = if ver == 4 { 4 } else { 16 };
                        if v.len() < j + 2 + alen {
                            die("capsules", "short ADDRESS_ASSIGN");
                        }
                        let ad = &v[j + 1..j + 1 + alen];
                        let plen = v[j + 1 + alen];
                        j += 2 + alen;
                        // C08: version 4|6, prefix within it, host bits zero
                        let bits = alen as u32 * 8;
                        if (ver != 4 && ver != 6) || plen as u32 > bits {
                            die("C08", format!("ADDRESS_ASSIGN version {} prefix /{}", ver, plen));
                        }
                        for (k, b) in ad.iter().enumerate() {
                            let keep = (plen as i32 - 8 * k as i32).clamp(0, 8) as u32;
                            let mask = if keep == 0 { 0u8 } else { (0xffu16 << (8 - keep)) as u8 };
                            if b & !mask != 0 {
                                die("C08", format!("ADDRESS_ASSIGN /{} with host bits set", plen));
                            }
                        }
                        if ver == 4 {
                            let ip = Ipv4Addr::new(ad[0], ad[1], ad[2], ad[3]);
                            println!("ADDRESS_ASSIGN: request {} {}/{}", id, ip, plen);
                            if id == 1 {
                                addr = Some(ip);
                            }
                        } else {
                            println!("ADDRESS_ASSIGN: request {} IPv6 /{}", id, plen);
                        }
                    }
                }
                0x03 => {
                    let mut k = 0;
                    // (version, protocol, start, end) of the range before, for C07
                    let mut prev: Option<(u8, u8, Vec<u8>, Vec<u8>)> = None;
                    while j < v.len() {
                        let ver = v[j];
                        if ver != 4 && ver != 6 {
                            die("C07", format!("route of IP version {}", ver));
                        }
                        let alen = if ver == 4 { 4 } else { 16 };
                        if v.len() < j + 2 + 2 * alen {
                            die("capsules", "short ROUTE_ADVERTISEMENT");
                        }
                        let start = v[j + 1..j + 1 + alen].to_vec();
                        let end = v[j + 1 + alen..j + 1 + 2 * alen].to_vec();
                        let proto = v[j + 1 + 2 * alen];
                        if start > end {
                            die("C07", "a range whose start is after its end");
                        }
                        if let Some((pv, pp, _, pe)) = &prev {
                            let ordered = *pv < ver
                                || (*pv == ver && (*pp < proto || (*pp == proto && *pe < start)));
                            if !ordered {
                                die("C07", "ranges out of order or overlapping");
                            }
                        }
                        prev = Some((ver, proto, start, end));
                        if v[j] == 4 {
                            let s = &v[j + 1..j + 5];
                            let e = &v[j + 5..j + 9];
                            println!(
                                "route: {}-{} protocol {}",
                                Ipv4Addr::new(s[0], s[1], s[2], s[3]),
                                Ipv4Addr::new(e[0], e[1], e[2], e[3]),
                                v[j + 9]
                            );
                        }
                        j += 2 + 2 * alen;
                        k += 1;
                    }
                    println!("ROUTE_ADVERTISEMENT: {} ranges", k);
                    routes = true;
                }
                _ => println!("capsule 0x{:x}: {} bytes, skipped", ct, n),
            }
        }
    }
    let me = addr.unwrap();

    if a.stray {
        // C12: an unknown context ID; C14: a stream that carries no
        // CONNECT-IP request (the next client bidirectional one). Both
        // are to be dropped without harm to the tunnel.
        let dst = a.ping.unwrap_or_else(|| die("stray", "--stray needs --ping"));
        let pkt = icmp_echo(me, dst, 0x5a47, 0x7777, b"stray");
        for (q, ctx) in [(qsid, 1u64), (qsid + 1, 0u64)] {
            let mut d = Vec::new();
            put_varint(&mut d, q);
            put_varint(&mut d, ctx);
            d.extend_from_slice(&pkt);
            conn.send_datagram(Bytes::from(d)).unwrap_or_else(|e| die("stray", e));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(e) = conn.close_reason() {
            die("stray", format!("the relay closed the connection: {}", e));
        }
        println!("stray datagrams: context ID 1 and stream {} sent", 4 * (qsid + 1));
    }
    if let Some(dst) = a.ping {
        for k in 0..=a.key_updates {
            if k > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                conn.force_key_update();
            }
            let seq = k as u16 + 1;
            let pkt = icmp_echo(me, dst, 0x5a47, seq, b"zgate interop quinn");
            let rtt = round_trip(&conn, qsid, &pkt, |ip| {
                ip.len() >= 28
                    && ip[9] == 1
                    && ip[12..16] == dst.octets()
                    && ip[16..20] == me.octets()
                    && ip[20] == 0
                    && ip[24..26] == [0x5a, 0x47]
                    && ip[26..28] == seq.to_be_bytes()
            })
            .await
            .unwrap_or_else(|e| die(if k > 0 { "key update" } else { "ping" }, e));
            if k == 0 {
                println!("ping {}: echo reply in {:.3} ms", dst, rtt.as_secs_f64() * 1e3);
            } else {
                println!("key update {}: echo reply in {:.3} ms", k, rtt.as_secs_f64() * 1e3);
            }
        }
    } else if a.key_updates > 0 {
        die("key update", "--key-updates needs --ping");
    }
    if let Some((dst, port)) = a.udp {
        let data = format!("zgate interop quinn {}", std::process::id());
        let pkt = udp4(me, 40000, dst, port, data.as_bytes());
        let want = data.clone();
        let rtt = round_trip(&conn, qsid, &pkt, move |ip| {
            ip.len() >= 28 && ip[9] == 17 && ip[12..16] == dst.octets() && &ip[28..] == want.as_bytes()
        })
        .await
        .unwrap_or_else(|e| die("udp", e));
        println!("udp {}:{}: {} bytes back in {:.3} ms", dst, port, data.len(), rtt.as_secs_f64() * 1e3);
    }

    conn.close(quinn::VarInt::from_u32(0x100), b""); // H3_NO_ERROR
    ep.wait_idle().await;
    println!("closed: H3_NO_ERROR");
}
