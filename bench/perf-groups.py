#!/usr/bin/env python3
"""One thread's CPU per request, by what the thread does (docs/performance.md §17).

    python3 bench/perf-groups.py OUT [THREAD]      # THREAD defaults to httpy-io

OUT is what bench/io-profile.sh wrote. Each perf sample of THREAD goes to
the first group whose pattern matches one of its frames, walking from the
leaf towards the root (so a `memcpy` inside the head encoder counts as head
encoding); a sample in the kernel goes by the user-space function that
entered it (so the kernel's TCP work under `send`/`writev` is "write").
A group's share of the samples times the thread's CPU per request over the
same window (/proc, OUT.before/OUT.after, requests from OUT.wrk) gives its
µs per request. LEAVES=group,group lists the leaf functions of those groups.
"""
import os
import re
import sys

from perfdata import Tally, group_of, samples, snap

out = sys.argv[1]
thread = sys.argv[2] if len(sys.argv) > 2 else 'httpy-io'

ALLOC = re.compile(r'^(malloc|free|cfree|realloc|calloc|_int_malloc|_int_free|_int_realloc|'
                   r'malloc_consolidate|unlink_chunk|__libc_(malloc|free|realloc|calloc)|tcache_|'
                   r'__rust_(alloc|dealloc|realloc)|__rdl_)')
# The user-space function that entered the kernel -> group.
SYSCALLS = [
    (re.compile(r'writev|^__send|^send|sendto|sendmsg'), 'kernel: write (send/writev)'),
    (re.compile(r'recv|^__read|^read$|^__libc_read|readv'), 'kernel: read (recv)'),
    (re.compile(r'epoll_wait|epoll_pwait'), 'kernel: epoll_wait (sleep, wake-up)'),
    (re.compile(r'^__GI___libc_write|^__libc_write|^write$|^__write|futex|^syscall|lll_lock_wake'),
     'kernel: wake another thread (eventfd, futex)'),
]
USER = [
    (re.compile(r'httparse|h1::role::'), 'parse (httparse, role)'),
    (re.compile(r'embedder::record'), 'record encode'),
    (re.compile(r'embedder::queue|Queue::push'), 'queue push'),
    (re.compile(r'embedder::reply|Reply::'), 'answer decode'),
    (re.compile(r'embedder::direct|h1::direct'), 'delivery write (incl. its head encode)'),
    (re.compile(r'h1::encode'), 'head encode'),
    (re.compile(r'cancellation_token|WaitForCancellation|notify::Notif'), 'close signals (locks)'),
    (re.compile(r'HeaderMap|drop_in_place<http::'), 'HeaderMap build, drop'),
    (re.compile(r'dispatch::|respond::route|router'), 'dispatch, routing'),
    (re.compile(r'h1::conn|h1::io|proto::'), 'connection loop'),
    (re.compile(r'oneshot'), 'oneshot (answer channel)'),
    (re.compile(r'tokio::'), 'Tokio: task scheduling, poll, timers'),
]



def user_group(frames):
    return next((g for s, _ in frames for p, g in USER if p.search(s)), 'other user code')


tally = Tally()
for comm, frames in samples(out + '.data'):
    if comm.startswith(thread):
        tally.add(group_of(frames, SYSCALLS, ALLOC, user_group, 'kernel: other'), frames)

requests = 0
with open(out + '.wrk') as f:
    for line in f:
        m = re.match(r'\s*(\d+) requests in', line)
        if m:
            requests = int(m.group(1))


tick_us = 1e6 / os.sysconf('SC_CLK_TCK')
before, after = snap(out + '.before'), snap(out + '.after')
cpu = sum((after[t][0] - before[t][0]) * tick_us for t in after if t in before and after[t][1] == thread)
per = cpu / requests
print(f'{out} {thread}: {requests} requests, {per:.2f} µs/req of CPU (/proc), {tally.total} samples')
tally.print(per, 'req')
