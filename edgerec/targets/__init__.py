"""Device targets: the machines an exported bundle is run and checked on.

Each target module builds (or finds) an environment able to run `edgerec.runtime` and offers a
way to run Python inside it. `arm64` emulates an AArch64 Debian with qemu user-mode on an x86 host.
"""
