"""A baseline balloon controller following oVirt MOM's published default balloon rules
(oVirt/mom doc/balloon.rules, the same as vdsm's 02-balloon.policy; summarised in the
project's MOM study). It polls: guest statistics every 5 s (collection interval), a policy
pass every 10 s (policy interval), with MOM's 10-sample moving averages. It talks QMP
itself, through a guest's QMP connection (guestlib.Qmp): query-balloon for the balloon,
the virtio-balloon statistics (qom-get guest-stats) for the guest's free memory, and
balloon to move it.

The rules, with MOM's constants:
  host_free = avg(host free) / host total (10 samples)
  host_free < 20 %: shrink every guest; otherwise grow every guest
  used = avg(balloon) - avg(guest MemFree)
  shrink: guest_free = host_free - 5 % when host_free <= 5 %, else 20 % * host_free / 20 %
          target = max(cur * 0.95, floor, used + guest_free * cur), applied if <= cur
  grow (cur < max): target = max(min(cur * 1.05, max), floor, used + 20 % * cur),
          kept at most max
  a change must exceed 0.25 % of cur; a guest under its floor goes back to its floor.
"""

from collections import deque

PRESSURE_THRESHOLD = 0.20
PRESSURE_CRITICAL = 0.05
MIN_GUEST_FREE_PERCENT = 0.20
MAX_BALLOON_CHANGE_PERCENT = 0.05
MIN_BALLOON_CHANGE_PERCENT = 0.0025
HISTORY = 10  # MOM's sample-history-length
COLLECT_S = 5  # MOM's default guest-monitor-interval / host-monitor-interval
POLICY_S = 10  # MOM's default policy-engine-interval


def avg(values):
    return sum(values) / len(values)


class MomGuest:
    """One guest as MOM sees it: balloon size and free memory histories."""

    def __init__(self, qmp, balloon_min, balloon_max, balloon_path="/machine/peripheral/balloon0"):
        self.qmp = qmp
        self.min = balloon_min
        self.max = balloon_max
        self.path = balloon_path
        self.cur = deque(maxlen=HISTORY)
        self.unused = deque(maxlen=HISTORY)
        # MOM asks libvirt for balloon statistics at its collection interval.
        qmp.execute("qom-set", {"path": self.path, "property": "guest-stats-polling-interval",
                                "value": COLLECT_S})

    def collect(self):
        """One collection: False when the guest has no statistics yet ("not ready")."""
        self.cur.append(self.qmp.actual())
        stats = self.qmp.execute("qom-get", {"path": self.path, "property": "guest-stats"})
        free = stats.get("stats", {}).get("stat-free-memory", -1)
        if free is None or free < 0:
            return False
        self.unused.append(free)
        return True


class Mom:
    """MOM's host monitor, guest monitors and policy engine on one polling schedule."""

    def __init__(self, host_total_bytes, guests):
        self.host_total = host_total_bytes
        self.guests = guests  # name -> MomGuest
        self.host_free = deque(maxlen=HISTORY)
        self.ready = set()
        self.next_collect = None
        self.next_policy = None
        self.commands = 0
        self.decisions = []  # (time, guest, from, to)

    def tick(self, now, host_used_bytes):
        if self.next_collect is None:
            self.next_collect = now
            self.next_policy = now + POLICY_S
        if now >= self.next_collect:
            self.next_collect += COLLECT_S
            self.host_free.append(self.host_total - host_used_bytes)
            for name, g in self.guests.items():
                if g.collect():
                    self.ready.add(name)
        if now >= self.next_policy:
            self.next_policy += POLICY_S
            self.evaluate(now)

    def evaluate(self, now):
        if not self.host_free:
            return
        host_free_percent = avg(self.host_free) / self.host_total
        for name in sorted(self.ready):
            g = self.guests[name]
            cur = g.cur[-1]
            used = avg(g.cur) - avg(g.unused)
            if host_free_percent < PRESSURE_THRESHOLD:
                target = self.shrink(g, cur, used, host_free_percent)
            else:
                target = self.grow(g, cur, used)
            if cur < g.min:  # balloon-qos: a guest under its guarantee goes back to it
                target = g.min
            if target is None or abs(target - cur) <= MIN_BALLOON_CHANGE_PERCENT * cur:
                continue
            target = int(target)
            g.qmp.execute("balloon", {"value": target})
            self.commands += 1
            self.decisions.append((now, name, cur, target))

    @staticmethod
    def shrink(g, cur, used, host_free_percent):
        if host_free_percent <= PRESSURE_CRITICAL:
            guest_free_percent = host_free_percent - 0.05  # "force guest to swap"
        else:
            guest_free_percent = MIN_GUEST_FREE_PERCENT * host_free_percent / PRESSURE_THRESHOLD
        floor = max(g.min, used + guest_free_percent * cur)
        target = max(cur * (1 - MAX_BALLOON_CHANGE_PERCENT), floor)
        return target if target <= cur else None

    @staticmethod
    def grow(g, cur, used):
        if cur >= g.max:
            return None
        floor = max(g.min, used + MIN_GUEST_FREE_PERCENT * cur)
        target = min(cur * (1 + MAX_BALLOON_CHANGE_PERCENT), g.max)
        target = max(target, floor)
        return min(target, g.max)  # MOM e0f3d3b: never above the maximum
