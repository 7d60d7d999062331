#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Judge a vhost-iommu test VM run from its console log.

usage: vm_verdict.py CONSOLE_LOG SELECTION KEEP_GOING QEMU_STATUS

Counts the kselftest results of every test program (its "# Totals" line),
KUnit's results from the kernel log, and fails the run on any kernel splat
(Oops, WARN, BUG, KASAN, UBSAN, lockdep, RCU, kmemleak). Ends with the line
"N passed, N failed, N skipped"; exits 1 if anything failed.
"""
import re
import sys

SPLAT = re.compile(
    r'(Oops|Internal error:|WARNING:|BUG:|kernel BUG|Kernel panic|KASAN:|UBSAN:|'
    r'possible recursive locking|possible circular locking|inconsistent lock state|'
    r'suspicious RCU usage|INFO: task .* blocked|INFO: rcu_.* stall|ODEBUG:|'
    r'refcount_t: |list_add corruption|list_del corruption|unreferenced object|'
    r'Unable to handle kernel|sleeping function called from invalid context|'
    r'DEBUG_LOCKS_WARN_ON|hung_task|soft lockup|hard LOCKUP)')
TOTALS = re.compile(r'^# Totals: pass:(\d+) fail:(\d+) xfail:(\d+) xpass:(\d+) skip:(\d+) error:(\d+)')
KUNIT_TOTALS = re.compile(r'^# Totals: pass:(\d+) fail:(\d+) skip:(\d+) total:(\d+)')


def main():
    ansi = re.compile(r'\x1b(\[[0-9;=?]*[A-Za-z]|[()][0-9A-Za-z])')
    log = [ansi.sub('', line) for line in
           open(sys.argv[1], errors='replace').read().splitlines()]
    sel = [line.split() for line in open(sys.argv[2]) if line.strip()]
    keep_going = sys.argv[3] == '1'
    qemu_status = int(sys.argv[4])
    passed = failed = skipped = 0
    report = []

    def section(begin, end, nth=0):
        # The whole name: "VMTEST-BEGIN iommufd" is not iommufd_fail_nth's
        out, inside = [], False
        for line in log:
            if line.startswith(begin) and \
               not re.match(r'\w', line[len(begin):len(begin) + 1]):
                inside = nth == 0
                nth -= 1
                out = []
                continue
            if inside and line.startswith(end):
                return out, True
            if inside:
                out.append(line)
        return out, False

    dmesg, have_dmesg = section('VMTEST-DMESG-BEGIN', 'VMTEST-DMESG-END')
    done = any(line.startswith('VMTEST-DONE') for line in log)
    booted = [line for line in log if line.startswith('VMTEST-BOOTED')]

    runs = {}       # a program selected twice (other ARGS): its nth run
    for fields in sel:
        name, cmd = fields[0], fields[3]
        nth = runs.get(name, 0)
        runs[name] = nth + 1
        if cmd == '-':          # KUnit: results are in the kernel log
            tot = [KUNIT_TOTALS.match(line) for line in dmesg]
            tot = [m for m in tot if m]
            if not tot:
                failed += 1
                report.append(f'FAIL {name}: no KUnit results in the kernel log')
                continue
            p = sum(int(m.group(1)) for m in tot)
            f = sum(int(m.group(2)) for m in tot)
            s = sum(int(m.group(3)) for m in tot)
            passed, failed, skipped = passed + p, failed + f, skipped + s
            report.append(f'{"FAIL" if f else "ok  "} {name}: {p} passed, {f} failed, {s} skipped')
            continue
        body, ended = section(f'VMTEST-BEGIN {name}', f'VMTEST-END {name} ', nth)
        end = [line for line in log if line.startswith(f'VMTEST-END {name} ')][nth:]
        if not ended:
            failed += 1
            report.append(f'FAIL {name}: did not finish (VM crashed or timed out)')
            continue
        m = re.search(r'rc=(\d+) start=([\d.]+) end=([\d.]+)', end[0])
        rc, secs = int(m.group(1)), float(m.group(3)) - float(m.group(2))
        tot = [TOTALS.match(line) for line in body]
        tot = [t for t in tot if t]
        if tot:
            t = [int(x) for x in tot[-1].groups()]
            p, f, s = t[0] + t[2], t[1] + t[3] + t[5], t[4]
            if rc != 0 and f == 0:
                f = 1
            if rc == 137:
                report.append(f'     {name}: killed by the timeout')
        else:
            p, f, s = (1, 0, 0) if rc == 0 else (0, 1, 0)
        passed, failed, skipped = passed + p, failed + f, skipped + s
        for line in body:
            if (line.startswith('not ok ') or line.startswith('# FAIL') or '#  FAIL' in line or
                    line.startswith('Bail out!') or
                    re.match(r'^# .*:\d+:Expected ', line) or line.startswith('# ') and 'TH_LOG' in line):
                report.append(f'     {name}: {line.strip()}')
        report.append(f'{"FAIL" if f else "ok  "} {name}: {p} passed, {f} failed, {s} skipped, '
                      f'rc={rc}, {secs:.1f} s')

    # Kernel splats, from the console stream and the final kernel log.
    splats = []
    for i, line in enumerate(log):
        if SPLAT.search(line) and not line.startswith(('VMTEST', '#', 'ok ', 'not ok ')):
            if ': ' in line and line.lstrip().startswith('#'):
                continue
            splats.append(i)
    seen = set()
    nsplat = 0
    for i in splats:
        key = re.sub(r'^\[[ \d.]+\] ', '', log[i])
        if key in seen:
            continue
        seen.add(key)
        nsplat += 1
        if nsplat <= 5:
            report.append('SPLAT: ' + '\n       '.join(log[i:i + 12]))
    if nsplat:
        report.append(f'FAIL kernel log: {nsplat} distinct splat line(s)')
        if not keep_going:
            failed += 1
    if not booted:
        failed += 1
        report.append('FAIL boot: the VM never reached /init')
        report.extend('     ' + line for line in log[-30:])
    elif not done:
        failed += 1
        report.append(f'FAIL vm: the run did not complete (qemu status {qemu_status})')
        report.extend('     ' + line for line in log[-15:])
    elif not have_dmesg:
        failed += 1
        report.append('FAIL vm: no kernel log dump')

    if booted:
        report.insert(0, booted[0])
    print('\n'.join(report))
    print(f'{passed} passed, {failed} failed, {skipped} skipped')
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
