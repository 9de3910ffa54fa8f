"""The guest zoo: distribution-shaped disk images with truth files (issue 7).

``tests/images/build`` is the entry point; this package holds its parts:

* :mod:`zoo.payload` - the kernel (Debian's, renamed) and the tiny busybox initramfs;
* :mod:`zoo.tools` - running real tools (mkfs.*, sfdisk, sgdisk, LVM, qemu-img) and loop devices;
* :mod:`zoo.disk` - filesystems from staging trees, partitioned disks, LVM physical volumes;
* :mod:`zoo.shapes` - boot-loader configuration text in each generator's shape (written by us);
* :mod:`zoo.guests_rh`, :mod:`zoo.guests_deb`, :mod:`zoo.guests_misc` - one builder per guest;
* :mod:`zoo.registry` - the table of guests and their variants (qcow2, two disks).
"""
