/*
 * The event loop of the main thread: epoll over the inotify descriptor,
 * a signalfd, timerfds and the scheduler's done descriptor.
 */
#ifndef SFTPRELAY_LOOP_H
#define SFTPRELAY_LOOP_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

struct loop;

/* Called when fd is ready; events are epoll's. */
struct loop_handler {
    void (*fn)(struct loop *l, int fd, uint32_t events, void *arg);
    void *arg;
};

int loop_new(struct loop **out);
void loop_free(struct loop *l);

/* Watch fd for events (EPOLLIN, ...).  h is copied. */
int loop_add(struct loop *l, int fd, uint32_t events,
             const struct loop_handler *h);
int loop_del(struct loop *l, int fd);

/* Run until loop_stop(); returns 0 or a negative errno. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

/* The monotonic clock, in milliseconds: what every deadline is kept in. */
int64_t mono_ms(void);

/* The absolute time at_ms (mono_ms()) as pthread_cond_timedwait() wants. */
struct timespec mono_timespec(int64_t at_ms);

/* A condition variable whose timed waits use the monotonic clock. */
void mono_cond_init(pthread_cond_t *c);

/* A timerfd (CLOCK_MONOTONIC, non-blocking); -errno on failure. */
int timer_new(void);
/* Fire after ms (0 disarms), then every interval_ms (0: once). */
int timer_arm(int fd, int64_t ms, int64_t interval_ms);
/* Consume the expiry count so the timer can fire again. */
void timer_ack(int fd);

#endif
