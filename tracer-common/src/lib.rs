//! `#[repr(C)]` types shared by the tracer's BPF program and user space.
#![no_std]
