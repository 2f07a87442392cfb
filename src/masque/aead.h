/*
 * aead.h — QUIC packet protection callbacks for ngtcp2 that call wolfCrypt's
 * AES-GCM and AES block functions directly (issue 21, target 2).
 *
 * ngtcp2's wolfSSL helper (ngtcp2_crypto_encrypt_cb and friends) protects
 * every packet through wolfSSL's EVP layer, which is slow and, for
 * ChaCha20-Poly1305, wrong:
 *  - wolfSSL_quic_aead_encrypt() makes five EVP calls per packet, and the
 *    EVP GCM mode copies the AAD and the whole payload into buffers it
 *    mallocs, then encrypts at CipherFinal. Here a packet is one
 *    wc_AesGcmEncrypt() (or Decrypt) on the key schedule the EVP context
 *    already holds, in place when dest == plaintext, and an AES
 *    header-protection mask one wc_AesEncryptDirect().
 *  - wolfSSL's EVP ChaCha20-Poly1305 decryption before 5.9.1 (zgate pinned
 *    5.7.2 until 2026-12-07) computes the tag and never compares it with
 *    the packet's (CVE-2026-5479): through the helper, a peer that
 *    negotiates TLS_CHACHA20_POLY1305_SHA256 accepts every forged or
 *    damaged Handshake and 1-RTT packet. Here that AEAD is
 *    wc_ChaCha20Poly1305_Encrypt/Decrypt, which compare the tag whatever
 *    the wolfSSL version.
 *
 * Contract. The contexts are the ones ngtcp2's wolfSSL helper creates
 * (ngtcp2_crypto_aead_ctx_{en,de}crypt_init and cipher_ctx_encrypt_init:
 * a WOLFSSL_EVP_CIPHER_CTX keyed for AES-128/256-GCM, ChaCha20-Poly1305,
 * AES-128/256-ECB or ChaCha20). What they seal is byte for byte what the
 * helper seals (tests/test_masque_aead.c checks it against the helper);
 * they open what the helper opens, except a packet whose tag is wrong.
 * A ChaCha20 header-protection mask is the helper's own call. An AEAD
 * context of any other kind is neither sealed nor opened: both return
 * NGTCP2_ERR_CALLBACK_FAILURE, which fails the connection (wolfSSL is
 * built without AES-CCM, the only other QUIC AEAD, so this is a context
 * these callbacks were never meant for, not a peer's packet). The nonce
 * must be 12 bytes (RFC 9001 §5.3). Return values are the helper's: 0, or
 * NGTCP2_ERR_CALLBACK_FAILURE (encrypt, hp_mask, and an unknown AEAD
 * either way), NGTCP2_ERR_DECRYPT (decrypt: a wrong tag, a ciphertext
 * shorter than the tag). The contexts
 * are only read here, so one context may serve a connection's packets in
 * any order, as ngtcp2 expects.
 */
#ifndef ZG_MASQUE_AEAD_H
#define ZG_MASQUE_AEAD_H

#include <ngtcp2/ngtcp2.h>

int masque_aead_encrypt_cb(uint8_t *dest, const ngtcp2_crypto_aead *aead,
			   const ngtcp2_crypto_aead_ctx *aead_ctx, const uint8_t *plaintext,
			   size_t plaintextlen, const uint8_t *nonce, size_t noncelen,
			   const uint8_t *aad, size_t aadlen);

int masque_aead_decrypt_cb(uint8_t *dest, const ngtcp2_crypto_aead *aead,
			   const ngtcp2_crypto_aead_ctx *aead_ctx, const uint8_t *ciphertext,
			   size_t ciphertextlen, const uint8_t *nonce, size_t noncelen,
			   const uint8_t *aad, size_t aadlen);

/* dest receives NGTCP2_HP_SAMPLELEN bytes (ngtcp2's mask buffers are that
 * long; it uses the first NGTCP2_HP_MASKLEN). */
int masque_hp_mask_cb(uint8_t *dest, const ngtcp2_crypto_cipher *hp,
		      const ngtcp2_crypto_cipher_ctx *hp_ctx, const uint8_t *sample);

#endif
