"""What bench/perf-groups.py and bench/tls-groups.py both read: the samples
of a `perf record --call-graph` file, each as its thread's name and its
frames (symbol, object) from the leaf to the root, and the per-thread CPU
snapshots the profiling scripts take from /proc (OUT.before, OUT.after)."""
import collections
import os
import re
import subprocess

FRAME = re.compile(r'\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$')


def samples(data):
    """Yields (thread name, [(symbol, object), ...]) for each sample of `data`."""
    script = subprocess.run(['perf', 'script', '-i', data, '--no-inline', '-F', 'comm,tid,ip,sym,dso'],
                            capture_output=True, text=True, check=True).stdout
    for block in script.split('\n\n'):
        lines = [line for line in block.split('\n') if line.strip()]
        if not lines:
            continue
        frames = []
        for line in lines[1:]:
            m = FRAME.match(line)
            if m:
                frames.append((re.sub(r'\+0x[0-9a-f]+$', '', m.group(1)), m.group(2)))
        yield lines[0].strip(), frames


def snap(path):
    """{tid: (user + system ticks, thread name)} from a /proc snapshot file."""
    d = {}
    with open(path) as f:
        for line in f:
            p = line.split()
            d[p[0]] = (int(p[1]) + int(p[2]), ' '.join(p[3:]))
    return d


def group_of(frames, syscalls, alloc, user, kernel_other):
    """The group of one sample: a kernel sample by the system call that
    entered it (`syscalls`: [(pattern, group)] tried on the user-space
    function nearest the kernel), an allocator leaf as the allocator, any
    other by `user(frames)`."""
    if not frames:
        return '(no stack)'
    if 'kernel' in frames[0][1]:
        entry = next((s for s, d in frames if 'kernel' not in d), '')
        return next((g for p, g in syscalls if p.search(entry)), kernel_other)
    if alloc.search(frames[0][0]):
        return 'allocator (malloc, free)'
    return user(frames)


class Tally:
    """Samples per group, and per group its leaf functions."""

    def __init__(self):
        self.groups = collections.Counter()
        self.leaves = collections.defaultdict(collections.Counter)
        self.total = 0

    def add(self, group, frames):
        self.total += 1
        self.groups[group] += 1
        if frames:
            self.leaves[group][frames[0][0][:100]] += 1

    def print(self, per, unit, width=48, digits=2):
        """Each group's share and its share of `per` (CPU per `unit`);
        then, for the groups named in $LEAVES, their commonest leaves."""
        for group, n in self.groups.most_common():
            print(f'  {group:{width}s} {100 * n / self.total:5.1f}%  {per * n / self.total:6.{digits}f} µs/{unit}')
        for name in filter(None, os.environ.get('LEAVES', '').split(',')):
            for group in self.groups:
                if group.startswith(name):
                    print('==', group)
                    for sym, n in self.leaves[group].most_common(12):
                        print(f'    {n:5d} {sym}')
