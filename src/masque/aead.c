#include "masque/aead.h"

#include <limits.h>

#include <wolfssl/options.h>

#include <ngtcp2/ngtcp2_crypto.h>
#include <wolfssl/openssl/evp.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>

/* The EVP context's cipher type, set by wolfSSL_EVP_CipherInit. */
static int is_aes_gcm(const WOLFSSL_EVP_CIPHER_CTX *c)
{
	return c->cipherType == AES_128_GCM_TYPE || c->cipherType == AES_256_GCM_TYPE;
}

static int is_chacha_poly(const WOLFSSL_EVP_CIPHER_CTX *c)
{
	/* the EVP context keeps the key for its per-nonce Init (evp.c) */
	return c->cipherType == CHACHA20_POLY1305_TYPE && c->key != NULL;
}

static int is_aes_ecb(const WOLFSSL_EVP_CIPHER_CTX *c)
{
	return c->cipherType == AES_128_ECB_TYPE || c->cipherType == AES_256_ECB_TYPE;
}

/* QUIC's AEAD nonce is the IV's length, 12 bytes (RFC 9001 §5.3); the tag
 * is 16 for all three AEADs TLS 1.3 QUIC uses. */
#define GCM_TAG 16
#define NONCE 12

int masque_aead_encrypt_cb(uint8_t *dest, const ngtcp2_crypto_aead *aead,
			   const ngtcp2_crypto_aead_ctx *aead_ctx, const uint8_t *plaintext,
			   size_t plaintextlen, const uint8_t *nonce, size_t noncelen,
			   const uint8_t *aad, size_t aadlen)
{
	WOLFSSL_EVP_CIPHER_CTX *c = aead_ctx->native_handle;

	(void)aead;
	/* an AEAD of another kind is refused, as decrypt refuses it (aead.h) */
	if (!is_chacha_poly(c) && !is_aes_gcm(c))
		return NGTCP2_ERR_CALLBACK_FAILURE;
	if (plaintextlen > UINT_MAX - GCM_TAG || aadlen > UINT_MAX || noncelen != NONCE)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	if (is_chacha_poly(c)) {
		if (wc_ChaCha20Poly1305_Encrypt(c->key, nonce, aad, (word32)aadlen, plaintext,
						(word32)plaintextlen, dest,
						dest + plaintextlen) != 0)
			return NGTCP2_ERR_CALLBACK_FAILURE;
		return 0;
	}
	if (wc_AesGcmEncrypt(&c->cipher.aes, dest, plaintext, (word32)plaintextlen, nonce,
			     (word32)noncelen, dest + plaintextlen, GCM_TAG, aad,
			     (word32)aadlen) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	return 0;
}

int masque_aead_decrypt_cb(uint8_t *dest, const ngtcp2_crypto_aead *aead,
			   const ngtcp2_crypto_aead_ctx *aead_ctx, const uint8_t *ciphertext,
			   size_t ciphertextlen, const uint8_t *nonce, size_t noncelen,
			   const uint8_t *aad, size_t aadlen)
{
	WOLFSSL_EVP_CIPHER_CTX *c = aead_ctx->native_handle;
	size_t n;

	(void)aead;
	/* not a packet's fault but the context's: ngtcp2 fails the
	 * connection instead of dropping every packet as forged */
	if (!is_chacha_poly(c) && !is_aes_gcm(c))
		return NGTCP2_ERR_CALLBACK_FAILURE;
	if (ciphertextlen < GCM_TAG || ciphertextlen > UINT_MAX || aadlen > UINT_MAX ||
	    noncelen != NONCE)
		return NGTCP2_ERR_DECRYPT;
	n = ciphertextlen - GCM_TAG;
	if (is_chacha_poly(c)) {
		/* Never the helper here: wolfSSL's EVP ChaCha20-Poly1305 decrypt
		 * (before 5.9.1) computes the tag and does not compare it
		 * (CVE-2026-5479); the one-shot call compares it. */
		if (wc_ChaCha20Poly1305_Decrypt(c->key, nonce, aad, (word32)aadlen, ciphertext,
						(word32)n, ciphertext + n, dest) != 0)
			return NGTCP2_ERR_DECRYPT;
		return 0;
	}
	if (wc_AesGcmDecrypt(&c->cipher.aes, dest, ciphertext, (word32)n, nonce, (word32)noncelen,
			     ciphertext + n, GCM_TAG, aad, (word32)aadlen) != 0)
		return NGTCP2_ERR_DECRYPT;
	return 0;
}

int masque_hp_mask_cb(uint8_t *dest, const ngtcp2_crypto_cipher *hp,
		      const ngtcp2_crypto_cipher_ctx *hp_ctx, const uint8_t *sample)
{
	WOLFSSL_EVP_CIPHER_CTX *c = hp_ctx->native_handle;

	if (!is_aes_ecb(c))
		return ngtcp2_crypto_hp_mask_cb(dest, hp, hp_ctx, sample);
	if (wc_AesEncryptDirect(&c->cipher.aes, dest, sample) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	return 0;
}
