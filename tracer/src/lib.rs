//! Trace USDT probes with BPF.
