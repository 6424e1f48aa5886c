/*
 * A small epoll loop.  Handlers are kept in a list next to their fd;
 * there are only a handful (inotify, signals, a few timers).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "sftprelay/loop.h"

struct slot {
    int fd;
    struct loop_handler h;
    struct slot *next;
};

struct loop {
    int epfd;
    int stop;
    struct slot *slots;
};

int loop_new(struct loop **out)
{
    struct loop *l = calloc(1, sizeof(*l));

    *out = NULL;
    if (l == NULL)
        return -ENOMEM;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        int r = -errno;

        free(l);
        return r;
    }
    *out = l;
    return 0;
}

void loop_free(struct loop *l)
{
    struct slot *s, *next;

    if (l == NULL)
        return;
    for (s = l->slots; s; s = next) {
        next = s->next;
        free(s);
    }
    close(l->epfd);
    free(l);
}

int loop_add(struct loop *l, int fd, uint32_t events,
             const struct loop_handler *h)
{
    struct epoll_event ev = {.events = events};
    struct slot *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return -ENOMEM;
    s->fd = fd;
    s->h = *h;
    ev.data.ptr = s;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int r = -errno;

        free(s);
        return r;
    }
    s->next = l->slots;
    l->slots = s;
    return 0;
}

int loop_del(struct loop *l, int fd)
{
    struct slot **pp, *s;

    for (pp = &l->slots; *pp; pp = &(*pp)->next) {
        if ((*pp)->fd != fd)
            continue;
        s = *pp;
        *pp = s->next;
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
        free(s);
        return 0;
    }
    return -ENOENT;
}

int loop_run(struct loop *l)
{
    struct epoll_event evs[16];
    int n, i;

    l->stop = 0;
    while (!l->stop) {
        n = epoll_wait(l->epfd, evs, 16, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        for (i = 0; i < n && !l->stop; i++) {
            struct slot *s = evs[i].data.ptr;

            s->h.fn(l, s->fd, evs[i].events, s->h.arg);
        }
    }
    return 0;
}

void loop_stop(struct loop *l)
{
    l->stop = 1;
}

int timer_new(void)
{
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);

    return fd < 0 ? -errno : fd;
}

int timer_arm(int fd, int64_t ms, int64_t interval_ms)
{
    struct itimerspec its = {
        .it_value = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000},
        .it_interval = {.tv_sec = interval_ms / 1000,
                        .tv_nsec = (interval_ms % 1000) * 1000000},
    };

    return timerfd_settime(fd, 0, &its, NULL) < 0 ? -errno : 0;
}

void timer_ack(int fd)
{
    uint64_t n;

    if (read(fd, &n, sizeof(n)) < 0) {
        /* EAGAIN: nothing to consume */
    }
}

int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec mono_timespec(int64_t at_ms)
{
    struct timespec ts = {.tv_sec = at_ms / 1000,
                          .tv_nsec = (at_ms % 1000) * 1000000};

    return ts;
}

void mono_cond_init(pthread_cond_t *c)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(c, &ca);
    pthread_condattr_destroy(&ca);
}
