/*
 * Listen addresses: ADDRESS:PORT, [IPv6]:PORT, loopback or not, and a
 * socket that says where it listens.
 */
#include "config.h"

#include <netinet/in.h>
#include <unistd.h>

#include "testutil.h"
#include "sftprelay/addr.h"

START_TEST(test_split)
{
    char host[64];
    unsigned port = 1;

    ck_assert_int_eq(addr_split("127.0.0.1:9469", host, sizeof(host), &port),
                     0);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_uint_eq(port, 9469);
    ck_assert_int_eq(addr_split("[::1]:0", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "::1");
    ck_assert_uint_eq(port, 0);
    ck_assert_int_eq(addr_split("localhost:80", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "localhost");
    ck_assert_int_eq(addr_split("127.0.0.1", host, sizeof(host), &port),
                     -EINVAL);
    ck_assert_int_eq(addr_split(":9469", host, sizeof(host), &port), -EINVAL);
    ck_assert_int_eq(addr_split("h:65536", host, sizeof(host), &port), -EINVAL);
    ck_assert_int_eq(addr_split("h:-1", host, sizeof(host), &port), -EINVAL);
    ck_assert_int_eq(addr_split("h: 80", host, sizeof(host), &port), -EINVAL);
    ck_assert_int_eq(addr_split("h:80x", host, sizeof(host), &port), -EINVAL);
    ck_assert_int_eq(addr_split("h:", host, sizeof(host), &port), -EINVAL);
    ck_assert_int_eq(addr_split("a-very-long-name:1", host, 8, &port), -EINVAL);
}
END_TEST

/* Whether listen parses to a loopback address. */
static int loopback(const char *listen)
{
    struct sockaddr_storage sa;
    socklen_t len;

    ck_assert_int_eq(addr_parse(listen, &sa, &len), 0);
    return addr_is_loopback(&sa);
}

START_TEST(test_loopback)
{
    ck_assert(loopback("127.0.0.1:9469"));
    ck_assert(loopback("127.3.2.1:9469"));
    ck_assert(loopback("[::1]:9469"));
    ck_assert(loopback("[::ffff:127.0.0.1]:9469"));
    ck_assert(!loopback("0.0.0.0:9469"));
    ck_assert(!loopback("[::]:9469"));
    ck_assert(!loopback("10.1.2.3:9469"));
    ck_assert(!loopback("128.0.0.1:9469"));
    ck_assert(!loopback("[::ffff:10.0.0.1]:9469"));
}
END_TEST

START_TEST(test_listen_and_name)
{
    struct sockaddr_storage sa;
    socklen_t len;
    char name[64] = "?";
    int fd = -1, fd2 = -1;

    ck_assert_int_eq(addr_parse("127.0.0.1:0", &sa, &len), 0);
    ck_assert_int_eq(addr_listen(&sa, len, 4, &fd), 0);
    addr_name(fd, name, sizeof(name));
    ck_assert_int_eq(strncmp(name, "127.0.0.1:", 10), 0);
    ck_assert_int_ne(atoi(name + 10), 0);
    /* The same address again: in use. */
    ck_assert_int_eq(addr_parse(name, &sa, &len), 0);
    ck_assert_int_eq(addr_listen(&sa, len, 4, &fd2), -EADDRINUSE);
    ck_assert_int_eq(fd2, -1);
    close(fd);
}
END_TEST

static Suite *addr_suite(void)
{
    Suite *s = suite_create("addr");
    TCase *tc = tcase_create("listen");

    tcase_add_test(tc, test_split);
    tcase_add_test(tc, test_loopback);
    tcase_add_test(tc, test_listen_and_name);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(addr_suite)
