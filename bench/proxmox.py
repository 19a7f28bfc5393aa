"""A baseline balloon controller following Proxmox VE's AutoBalloon rules as published
(proxmox/pve-manager PVE/AutoBalloon.pm, compute_alg1, driven by PVE/Service/pvestatd.pm's
auto_balloning; read there, written anew here). It polls like pvestatd: every 10 s it reads
each VM's balloon size and free memory (virtio-balloon statistics, qom-get guest-stats, as
PVE's patched query-balloon reports them) and the host's use, and moves balloons through
QMP itself.

The rules, with PVE's defaults:
  goal = ballooning-target (80 %) of host memory - host memory used   (bytes to hand out;
         negative: to take back); |goal| <= 10 MiB: nothing
  VMs with memory pressure (free <= 25 % of balloon_min, or below balloon_min) are grown
  first, VMs with enough free memory shrunk first; when that group makes no progress,
  every VM is considered
  each VM's desired size = balloon_min + (what the group has above its minimums + goal)
         * shares / total shares (shares default 1000), clamped to [balloon_min, maxmem];
         it moves toward it by at most 100 MiB per round; repeated until the goal is spent
         or nothing moves
Here the host is the benchmark's memory cgroup: memory total = its limit, used = its usage.
"""

MIB = 1024 * 1024
ROUND_S = 10          # pvestatd's update loop
TARGET = 0.80         # ballooning-target default, 80 %
MAX_CHANGE = 100 * MIB
DEAD_BAND = 10 * MIB
SHARES = 1000


class PveVm:
    """One VM as AutoBalloon sees it."""

    def __init__(self, qmp, balloon_min, maxmem, shares=SHARES,
                 balloon_path="/machine/peripheral/balloon0"):
        self.qmp = qmp
        self.balloon_min = balloon_min
        self.maxmem = maxmem
        self.shares = shares
        self.path = balloon_path
        self.balloon = None
        self.freemem = None
        qmp.execute("qom-set", {"path": self.path, "property": "guest-stats-polling-interval",
                                "value": 2})

    def collect(self):
        self.balloon = self.qmp.actual()
        stats = self.qmp.execute("qom-get", {"path": self.path, "property": "guest-stats"})
        free = stats.get("stats", {}).get("stat-free-memory", -1)
        self.freemem = free if free is not None and free >= 0 else None


def change(vms, ids, res, amount):
    """Spread amount (bytes, signed) over the VMs ids by shares, each at most MAX_CHANGE
    from its current balloon per round, starting from balloon_min; updates res (vm id ->
    new size). Returns what is left of amount."""
    rest = amount
    done = set()
    repeat = progress = True
    while rest and repeat and progress:
        repeat = progress = False
        shares_total = 0
        alloc_old = 0
        for i in ids:
            if i in done:
                continue
            vm = vms[i]
            alloc_old += res.get(i, vm.balloon) - vm.balloon_min
            shares_total += vm.shares
        if shares_total == 0:
            break
        alloc_new = alloc_old + rest
        changes = 0
        for i in ids:
            if i in done:
                continue
            vm = vms[i]
            desired = vm.balloon_min + int(alloc_new / shares_total * vm.shares)
            if desired > vm.maxmem:
                desired = vm.maxmem
                repeat = True
            elif desired < vm.balloon_min:
                desired = vm.balloon_min
                repeat = True
            if amount > 0 and desired > vm.balloon:
                new = min(vm.balloon + MAX_CHANGE, desired)
            elif desired < vm.balloon:
                new = max(vm.balloon - MAX_CHANGE, desired)
            else:
                done.add(i)
                continue
            if new != vm.balloon:
                old = res.get(i, vm.balloon)
                res[i] = new
                if new != old:
                    changes += new - old
                    progress = True
                    repeat = True
        rest -= changes
    return rest


def compute(vms, goal):
    """AutoBalloon's compute_alg1: new balloon sizes by VM id for a goal in bytes."""
    all_ids, pressured, roomy = [], [], []
    for i, vm in vms.items():
        if not vm.balloon or not vm.balloon_min or not vm.shares:
            continue
        all_ids.append(i)
        if (vm.freemem and vm.freemem > vm.balloon_min * 0.25
                and vm.balloon >= vm.balloon_min):
            roomy.append(i)
        else:
            pressured.append(i)
    res = {}
    if goal > DEAD_BAND:
        rest = change(vms, pressured, res, goal)
        if rest >= goal:
            change(vms, all_ids, res, rest)
    elif goal < -DEAD_BAND:
        rest = change(vms, roomy, res, goal)
        if rest <= goal:
            change(vms, all_ids, res, rest)
    return res


class AutoBalloon:
    """pvestatd's auto-ballooning on its 10 s loop, for VMs added as they start."""

    def __init__(self, host_total_bytes):
        self.host_total = host_total_bytes
        self.vms = {}
        self.next_round = None
        self.commands = 0
        self.decisions = []  # (time, vm, from, to)

    def add(self, name, vm):
        self.vms[name] = vm

    def remove(self, name):
        self.vms.pop(name, None)

    def tick(self, now, host_used_bytes):
        if self.next_round is None:
            self.next_round = now + ROUND_S
        if now < self.next_round:
            return
        self.next_round += ROUND_S
        live = {}
        for name, vm in self.vms.items():
            try:
                vm.collect()
                live[name] = vm
            except Exception:  # a VM gone (killed) is skipped, as pvestatd skips it
                continue
        goal = int(self.host_total * TARGET - host_used_bytes)
        for name, size in sorted(compute(live, goal).items()):
            vm = live[name]
            if int(size) == vm.balloon:
                continue
            try:
                vm.qmp.execute("balloon", {"value": int(size)})
            except Exception:
                continue
            self.commands += 1
            self.decisions.append((now, name, vm.balloon, int(size)))
