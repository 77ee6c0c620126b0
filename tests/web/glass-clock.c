/*
 * glass-clock: paints the wall clock onto an X display, for the glass-to-glass benchmark
 * (tests/web/glass.mjs). Every PERIOD_US it draws, at the top-left corner, one row of
 * BITS blocks (BLOCK x BLOCK pixels, black = 1, white = 0): the current time in ms modulo
 * 2^24 (bits 23..0), then an 8-bit check value, so a reader can reject torn or smeared
 * frames. Each picture is drawn on a pixmap and copied in one request.
 *
 * Build: gcc -O2 -o glass-clock glass-clock.c -lX11
 * Run:   DISPLAY=:15 ./glass-clock [period_us]
 */
#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 16
#define BITS 32

static uint32_t check8(uint32_t v) {
    uint32_t a = v & 0xff, b = (v >> 8) & 0xff, c = (v >> 16) & 0xff;
    return ((a + 3 * b + 7 * c) ^ 0xa5) & 0xff;
}

int main(int argc, char **argv) {
    long period_us = argc > 1 ? atol(argv[1]) : 4000;
    if (period_us < 500) period_us = 500;
    Display *d = XOpenDisplay(NULL);
    if (!d) { fprintf(stderr, "glass-clock: cannot open display\n"); return 1; }
    int scr = DefaultScreen(d);
    unsigned long black = BlackPixel(d, scr), white = WhitePixel(d, scr);
    unsigned w = BITS * BLOCK, h = BLOCK;
    XSetWindowAttributes attrs;
    attrs.override_redirect = True;
    attrs.background_pixel = white;
    Window win = XCreateWindow(d, RootWindow(d, scr), 0, 0, w, h, 0, CopyFromParent, InputOutput,
                               CopyFromParent, CWOverrideRedirect | CWBackPixel, &attrs);
    XStoreName(d, win, "glass-clock");
    XMapRaised(d, win);
    Pixmap pm = XCreatePixmap(d, win, w, h, DefaultDepth(d, scr));
    GC gc = XCreateGC(d, pm, 0, NULL);
    XSync(d, False);
    XRectangle rects[BITS];
    unsigned long frames = 0;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        uint64_t ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
        uint32_t v = (uint32_t)(ms & 0xffffff);
        uint32_t word = (v << 8) | check8(v);
        int n = 0;
        for (int i = 0; i < BITS; i++) {
            if (word & (1u << (BITS - 1 - i))) {
                rects[n].x = (short)(i * BLOCK);
                rects[n].y = 0;
                rects[n].width = BLOCK;
                rects[n].height = BLOCK;
                n++;
            }
        }
        XSetForeground(d, gc, white);
        XFillRectangle(d, pm, gc, 0, 0, w, h);
        XSetForeground(d, gc, black);
        if (n) XFillRectangles(d, pm, gc, rects, n);
        XCopyArea(d, pm, win, gc, 0, 0, w, h, 0, 0);
        if (++frames % 250 == 0) XRaiseWindow(d, win); /* stay above the xterm */
        XSync(d, False);
        next.tv_nsec += period_us * 1000;
        while (next.tv_nsec >= 1000000000L) { next.tv_nsec -= 1000000000L; next.tv_sec++; }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
}
