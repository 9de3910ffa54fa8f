"""virtkit boot: a secure, correct successor to Xen's pygrub (pipeline: image -> volume -> fs -> config -> menu -> extract)."""
