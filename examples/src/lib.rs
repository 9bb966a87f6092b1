//! Runnable walk-throughs of maas (see the files under `examples/`).
