"""``virtkit entropy``: an EGD service for guests' virtio-rng, and an audit of VM RNG settings.

Pure cores (no sockets, clocks or asyncio; ``mypy --strict``; an import-linter
contract keeps them that way):

* :mod:`~virtkit.entropy.events`, :mod:`~virtkit.entropy.protocol`,
  :mod:`~virtkit.entropy.client` - the EGD protocol, sans I/O, both ends;
* :mod:`~virtkit.entropy.accounting` - token buckets, max-min fair sharing,
  per-guest counters (time is passed in);
* :mod:`~virtkit.entropy.health` - SP 800-90B start-up and continuous tests.

Shells: :mod:`~virtkit.entropy.sources` (getrandom, hardware device, upstream
EGD), :mod:`~virtkit.entropy.identity` and :mod:`~virtkit.entropy.qemuargs`
(who is the peer), :mod:`~virtkit.entropy.listeners`,
:mod:`~virtkit.entropy.serving` + :mod:`~virtkit.entropy.server` (the asyncio
service), :mod:`~virtkit.entropy.handover` (systemd fd store, SCM_RIGHTS
hand-over), :mod:`~virtkit.entropy.metrics`, :mod:`~virtkit.entropy.runner`
(one process from start to exit); :mod:`~virtkit.entropy.domains` and
:mod:`~virtkit.entropy.audit` (the audit).  See docs/entropy.md.
"""
