//! Read USDT probes from ELF files and running processes.
