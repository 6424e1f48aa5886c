/*
 * The savable SHA-256: the same digests as OpenSSL's EVP whatever the
 * pieces it is fed in, and a state written down at any length and read
 * back goes on to the same digest.  Text that is not a state is refused.
 */
#include "config.h"

#include <openssl/evp.h>

#include "testutil.h"
#include "sftprelay/digest.h"
#include "sftprelay/sidehash.h"

static void evp_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0, i;

    ck_assert(EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) == 1);
    for (i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static unsigned char data[70000];

static void fill(void)
{
    size_t i;
    uint32_t x = 2463534242u;

    for (i = 0; i < sizeof(data); i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data[i] = (unsigned char)x;
    }
}

START_TEST(test_known)
{
    struct digest d;
    char hex[65];

    digest_init(&d);
    digest_hex(&d, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb924"
                          "27ae41e4649b934ca495991b7852b855");
    digest_update(&d, "abc", 3);
    digest_hex(&d, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223"
                          "b00361a396177a9cb410ff61f20015ad");
}
END_TEST

/* Fed in uneven pieces, saved and loaded after each: EVP's digest. */
START_TEST(test_save_load_every_length)
{
    static const size_t pieces[] = {0, 1, 63, 64, 65, 127, 128, 3, 4096, 55,
                                    56, 57, 65536};
    char want[65], got[65], text[DIGEST_STATE_MAX];
    struct digest d, e;
    size_t at = 0, i, n;

    fill();
    digest_init(&d);
    for (i = 0; at < sizeof(data); i++) {
        n = pieces[i % (sizeof(pieces) / sizeof(pieces[0]))];
        if (n > sizeof(data) - at)
            n = sizeof(data) - at;
        digest_update(&d, data + at, n);
        at += n;
        digest_save(&d, text);
        ck_assert_int_lt(strlen(text), DIGEST_STATE_MAX);
        memset(&e, 0xa5, sizeof(e));
        ck_assert_int_eq(digest_load(&e, text), 0);
        ck_assert_uint_eq(e.length, at);
        evp_hex(data, at, want);
        digest_hex(&e, got);
        ck_assert_str_eq(got, want);
        d = e; /* go on from what was read back */
    }
}
END_TEST

/* SHA-256's initial state words, and one hex digit short of them. */
#define H0_SHORT                                                               \
    "6a09e667bb67ae853c6ef372a54ff53a510e527f9b05688c1f83d9ab5be0cd1"
#define H0 H0_SHORT "9"

/* Pieces hashed on the side thread, or in the caller: EVP's digest. */
START_TEST(test_side)
{
    static const size_t pieces[] = {65536, 1, 65535, 65537, 3, 70000};
    struct sidehash *h = NULL;
    char want[65], got[65];
    struct digest d;
    size_t i, at = 0;
    unsigned char *big;

    big = malloc(sizeof(pieces) / sizeof(pieces[0]) * sizeof(data));
    ck_assert_ptr_nonnull(big);
    for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++)
        memcpy(big + i * sizeof(data), data, sizeof(data));
    ck_assert_int_eq(sidehash_new(&h), 0);
    digest_init(&d);
    for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        sidehash_start(_i ? h : NULL, &d, big + at, pieces[i]);
        at += pieces[i];
    }
    sidehash_wait(_i ? h : NULL);
    sidehash_wait(h); /* none under way: returns at once */
    digest_hex(&d, got);
    evp_hex(big, at, want);
    ck_assert_str_eq(got, want);
    sidehash_free(h);
    sidehash_free(NULL);
    free(big);
}
END_TEST

START_TEST(test_refused)
{
    static const char *const bad[] = {
        "",
        "sha1 0 " H0 " ",
        "sha256 x " H0 " ",
        "sha256 0 " H0_SHORT " ",
        "sha256 0 " H0_SHORT "Z ",
        "sha256 1 " H0 " ",
        "sha256 1 " H0 " abcd",
        "sha256 0 " H0 " 00",
    };
    struct digest d;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(digest_load(&d, bad[i]) == -EINVAL, "took %s", bad[i]);
    ck_assert_int_eq(digest_load(&d, NULL), -EINVAL);
    ck_assert_int_eq(
        digest_load(&d, "sha256 1 6a09e667bb67ae853c6ef372a54ff53a510e527f"
                        "9b05688c1f83d9ab5be0cd19 61"),
        0);
}
END_TEST

static Suite *digest_suite(void)
{
    Suite *s = suite_create("digest");
    TCase *tc = tcase_create("sha256");

    tcase_add_test(tc, test_known);
    tcase_add_test(tc, test_save_load_every_length);
    tcase_add_test(tc, test_refused);
    tcase_add_loop_test(tc, test_side, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(digest_suite)
