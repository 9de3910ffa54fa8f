"""virtkit: tools for people who run their own Xen and KVM hosts.

Importing this package has no side effects.
"""

__version__ = "0.1.0"
