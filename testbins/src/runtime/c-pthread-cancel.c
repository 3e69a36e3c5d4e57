/* Cancel a thread blocked in pause() and join it; print "cancelled".
 * Dynamic glibc implements cancellation by forced unwinding and dlopens
 * libgcc_s.so.1 for it; without that file the process aborts. No argument. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void *blocker(void *arg) {
    (void)arg;
    for (;;)
        pause(); /* a cancellation point: a pending cancel acts here */
    return NULL;
}

int main(void) {
    pthread_t th;
    int rc = pthread_create(&th, NULL, blocker, NULL);
    if (rc != 0) {
        fprintf(stderr, "pthread_create: %s\n", strerror(rc));
        return 1;
    }
    /* Deferred cancellation: no need to wait until the thread sleeps; a cancel
     * sent earlier stays pending until it reaches pause(). */
    rc = pthread_cancel(th);
    if (rc != 0) {
        fprintf(stderr, "pthread_cancel: %s\n", strerror(rc));
        return 1;
    }
    void *ret = NULL;
    rc = pthread_join(th, &ret);
    if (rc != 0) {
        fprintf(stderr, "pthread_join: %s\n", strerror(rc));
        return 1;
    }
    if (ret != PTHREAD_CANCELED) {
        fprintf(stderr, "thread was not cancelled\n");
        return 1;
    }
    printf("cancelled\n");
    return 0;
}
