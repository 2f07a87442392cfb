/*
 * test_masque_aead.c — src/masque/aead.c's packet protection callbacks
 * against ngtcp2's wolfSSL helper, on the contexts the helper makes: for
 * every QUIC cipher (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305 and their
 * header-protection ciphers) the same bytes out, in place or not, each
 * side opening what the other sealed on the same contexts in any order, and
 * every damaged packet (tag, ciphertext, AAD, nonce, too short) refused
 * with NGTCP2_ERR_DECRYPT — for ChaCha20-Poly1305 too, which the helper
 * opened whatever its tag on wolfSSL 5.7.2 (CVE-2026-5479, fixed in 5.9.1;
 * the helper refuses it too now, and the test checks that as well); an
 * AEAD context of another kind is refused both ways.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include <wolfssl/options.h>

#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_wolfssl.h>
#include <wolfssl/openssl/evp.h>
#include <wolfssl/quic.h>

#include "masque/aead.h"

#define MAXLEN 1500
#define TAG 16

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static void fill(uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		rng_state ^= rng_state << 13;
		rng_state ^= rng_state >> 7;
		rng_state ^= rng_state << 17;
		p[i] = (uint8_t)rng_state;
	}
}

struct suite {
	const char *name;
	const WOLFSSL_EVP_CIPHER *(*aead)(void);
	const WOLFSSL_EVP_CIPHER *(*hp)(void);
	size_t keylen, hpkeylen;
};

static const struct suite suites[] = {
	{ "AES-128-GCM", wolfSSL_EVP_aes_128_gcm, wolfSSL_EVP_aes_128_ecb, 16, 16 },
	{ "AES-256-GCM", wolfSSL_EVP_aes_256_gcm, wolfSSL_EVP_aes_256_ecb, 32, 32 },
	{ "ChaCha20-Poly1305", wolfSSL_EVP_chacha20_poly1305, wolfSSL_EVP_chacha20, 32, 32 },
};

struct keys {
	ngtcp2_crypto_aead aead;
	ngtcp2_crypto_aead_ctx enc, dec;
	ngtcp2_crypto_cipher hp;
	ngtcp2_crypto_cipher_ctx hp_ctx;
};

static void keys_init(struct keys *k, const struct suite *s)
{
	uint8_t key[32], hpkey[32];

	fill(key, sizeof(key));
	fill(hpkey, sizeof(hpkey));
	/* as ngtcp2's helper describes a negotiated cipher suite */
	k->aead.native_handle = (void *)s->aead();
	k->aead.max_overhead = TAG;
	assert_int_equal(ngtcp2_crypto_aead_ctx_encrypt_init(&k->enc, &k->aead, key, 12), 0);
	assert_int_equal(ngtcp2_crypto_aead_ctx_decrypt_init(&k->dec, &k->aead, key, 12), 0);
	k->hp.native_handle = (void *)s->hp();
	/* what ngtcp2_crypto_cipher_ctx_encrypt_init() does (not in its
	 * public header) */
	k->hp_ctx.native_handle = wolfSSL_quic_crypt_new(s->hp(), hpkey, NULL, 1);
	assert_non_null(k->hp_ctx.native_handle);
}

static void keys_free(struct keys *k)
{
	ngtcp2_crypto_aead_ctx_free(&k->enc);
	ngtcp2_crypto_aead_ctx_free(&k->dec);
	wolfSSL_EVP_CIPHER_CTX_free(k->hp_ctx.native_handle);
}

static const size_t lens[] = { 0, 1, 15, 16, 17, 31, 64, 255, 1200, 1452, MAXLEN };

/* Ours and the helper's seal the same bytes, also in place; each opens
 * what the other sealed, interleaved on the same contexts. */
static void test_same_bytes_as_the_helper(void **state)
{
	size_t si, li;

	(void)state;
	for (si = 0; si < sizeof(suites) / sizeof(suites[0]); si++) {
		struct keys k;

		keys_init(&k, &suites[si]);
		for (li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
			uint8_t pt[MAXLEN], a[MAXLEN + TAG], b[MAXLEN + TAG], inplace[MAXLEN + TAG];
			uint8_t back[MAXLEN], nonce[12], aad[48];
			size_t n = lens[li], aadlen = 1 + (size_t)(li * 4) % sizeof(aad);

			fill(pt, n);
			fill(nonce, sizeof(nonce));
			fill(aad, aadlen);
			assert_int_equal(masque_aead_encrypt_cb(a, &k.aead, &k.enc, pt, n, nonce,
								sizeof(nonce), aad, aadlen),
					 0);
			assert_int_equal(ngtcp2_crypto_encrypt_cb(b, &k.aead, &k.enc, pt, n, nonce,
								  sizeof(nonce), aad, aadlen),
					 0);
			if (memcmp(a, b, n + TAG) != 0)
				fail_msg("%s, %zu bytes: sealed bytes differ from the helper's",
					 suites[si].name, n);
			memcpy(inplace, pt, n);
			assert_int_equal(masque_aead_encrypt_cb(inplace, &k.aead, &k.enc, inplace, n,
								nonce, sizeof(nonce), aad, aadlen),
					 0);
			assert_memory_equal(inplace, b, n + TAG);

			memset(back, 0xa5, sizeof(back));
			assert_int_equal(masque_aead_decrypt_cb(back, &k.aead, &k.dec, b, n + TAG,
								nonce, sizeof(nonce), aad, aadlen),
					 0);
			if (n > 0)
				assert_memory_equal(back, pt, n);
			memset(back, 0xa5, sizeof(back));
			assert_int_equal(ngtcp2_crypto_decrypt_cb(back, &k.aead, &k.dec, a, n + TAG,
								  nonce, sizeof(nonce), aad, aadlen),
					 0);
			if (n > 0)
				assert_memory_equal(back, pt, n);
		}
		keys_free(&k);
	}
}

/* A packet damaged anywhere is refused with NGTCP2_ERR_DECRYPT, as the
 * helper refuses it; so is one shorter than the tag. */
static void test_damage_is_refused(void **state)
{
	size_t si;

	(void)state;
	for (si = 0; si < sizeof(suites) / sizeof(suites[0]); si++) {
		struct keys k;
		uint8_t pt[100], ct[100 + TAG], bad[100 + TAG], out[100], nonce[12], aad[20];
		size_t i;

		keys_init(&k, &suites[si]);
		fill(pt, sizeof(pt));
		fill(nonce, sizeof(nonce));
		fill(aad, sizeof(aad));
		assert_int_equal(masque_aead_encrypt_cb(ct, &k.aead, &k.enc, pt, sizeof(pt), nonce,
							sizeof(nonce), aad, sizeof(aad)),
				 0);
		/* a bit flipped in the ciphertext (0, 50) or the tag (100, 115) */
		for (i = 0; i < 4; i++) {
			static const size_t at[] = { 0, 50, 100, 115 };

			memcpy(bad, ct, sizeof(ct));
			bad[at[i]] ^= 0x01;
			assert_int_equal(masque_aead_decrypt_cb(out, &k.aead, &k.dec, bad, sizeof(bad),
								nonce, sizeof(nonce), aad,
								sizeof(aad)),
					 NGTCP2_ERR_DECRYPT);
			/* the helper agrees, for ChaCha20-Poly1305 too since
			 * wolfSSL 5.9.1 (5.7.2's EVP layer opened it, aead.h) */
			assert_int_equal(ngtcp2_crypto_decrypt_cb(out, &k.aead, &k.dec, bad,
								  sizeof(bad), nonce, sizeof(nonce),
								  aad, sizeof(aad)),
					 NGTCP2_ERR_DECRYPT);
		}
		aad[3] ^= 0x80;
		assert_int_equal(masque_aead_decrypt_cb(out, &k.aead, &k.dec, ct, sizeof(ct), nonce,
							sizeof(nonce), aad, sizeof(aad)),
				 NGTCP2_ERR_DECRYPT);
		aad[3] ^= 0x80;
		nonce[11] ^= 0x01;
		assert_int_equal(masque_aead_decrypt_cb(out, &k.aead, &k.dec, ct, sizeof(ct), nonce,
							sizeof(nonce), aad, sizeof(aad)),
				 NGTCP2_ERR_DECRYPT);
		nonce[11] ^= 0x01;
		assert_int_equal(masque_aead_decrypt_cb(out, &k.aead, &k.dec, ct, TAG - 1, nonce,
							sizeof(nonce), aad, sizeof(aad)),
				 NGTCP2_ERR_DECRYPT);
		/* and the undamaged packet still opens on the same context */
		assert_int_equal(masque_aead_decrypt_cb(out, &k.aead, &k.dec, ct, sizeof(ct), nonce,
							sizeof(nonce), aad, sizeof(aad)),
				 0);
		assert_memory_equal(out, pt, sizeof(pt));
		keys_free(&k);
	}
}

/* An AEAD context of a kind the callbacks do not know (this wolfSSL has no
 * AES-CCM, the only other QUIC AEAD, so the helper's header-protection
 * contexts, AES-ECB and ChaCha20, stand in for one) is refused both ways
 * with NGTCP2_ERR_CALLBACK_FAILURE, whatever the lengths, and nothing is
 * written: encrypt no longer hands it to the helper while decrypt refuses
 * it. */
static void test_unknown_aead_is_refused_both_ways(void **state)
{
	size_t si;

	(void)state;
	for (si = 0; si < sizeof(suites) / sizeof(suites[0]); si++) {
		struct keys k;
		ngtcp2_crypto_aead_ctx other;
		uint8_t pt[100], ct[100 + TAG], out[100 + TAG], nonce[12], aad[20];

		keys_init(&k, &suites[si]);
		other.native_handle = k.hp_ctx.native_handle;
		fill(pt, sizeof(pt));
		fill(nonce, sizeof(nonce));
		fill(aad, sizeof(aad));
		memset(out, 0xa5, sizeof(out));
		assert_int_equal(masque_aead_encrypt_cb(out, &k.aead, &other, pt, sizeof(pt), nonce,
							sizeof(nonce), aad, sizeof(aad)),
				 NGTCP2_ERR_CALLBACK_FAILURE);
		/* a packet sealed on the real context, offered to the other */
		assert_int_equal(masque_aead_encrypt_cb(ct, &k.aead, &k.enc, pt, sizeof(pt), nonce,
							sizeof(nonce), aad, sizeof(aad)),
				 0);
		assert_int_equal(masque_aead_decrypt_cb(out, &k.aead, &other, ct, sizeof(ct), nonce,
							sizeof(nonce), aad, sizeof(aad)),
				 NGTCP2_ERR_CALLBACK_FAILURE);
		/* shorter than a tag: still the context's fault, not the packet's */
		assert_int_equal(masque_aead_decrypt_cb(out, &k.aead, &other, ct, TAG - 1, nonce,
							sizeof(nonce), aad, sizeof(aad)),
				 NGTCP2_ERR_CALLBACK_FAILURE);
		for (size_t i = 0; i < sizeof(out); i++)
			assert_int_equal(out[i], 0xa5);
		/* the real contexts are untouched by it */
		assert_int_equal(masque_aead_decrypt_cb(out, &k.aead, &k.dec, ct, sizeof(ct), nonce,
							sizeof(nonce), aad, sizeof(aad)),
				 0);
		assert_memory_equal(out, pt, sizeof(pt));
		keys_free(&k);
	}
}

/* The header-protection mask is the helper's: all 16 bytes for AES-ECB,
 * the 5 QUIC uses for ChaCha20. */
static void test_hp_mask_is_the_helpers(void **state)
{
	size_t si, r;

	(void)state;
	for (si = 0; si < sizeof(suites) / sizeof(suites[0]); si++) {
		struct keys k;
		int aes = suites[si].hp != wolfSSL_EVP_chacha20;

		keys_init(&k, &suites[si]);
		for (r = 0; r < 32; r++) {
			uint8_t sample[NGTCP2_HP_SAMPLELEN], a[NGTCP2_HP_SAMPLELEN],
				b[NGTCP2_HP_SAMPLELEN];

			fill(sample, sizeof(sample));
			assert_int_equal(masque_hp_mask_cb(a, &k.hp, &k.hp_ctx, sample), 0);
			assert_int_equal(ngtcp2_crypto_hp_mask_cb(b, &k.hp, &k.hp_ctx, sample), 0);
			assert_memory_equal(a, b, aes ? sizeof(a) : NGTCP2_HP_MASKLEN);
		}
		keys_free(&k);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_bytes_as_the_helper),
		cmocka_unit_test(test_damage_is_refused),
		cmocka_unit_test(test_hp_mask_is_the_helpers),
		cmocka_unit_test(test_unknown_aead_is_refused_both_ways),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
