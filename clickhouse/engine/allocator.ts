// The embedded engine's allocator settings. chdb's library carries its own jemalloc, which reads JE_MALLOC_CONF
// once, when the library loads: so this module is imported by embedded.ts ahead of chdb, and sets the variable
// (unless the operator already has) before chdb's import loads the library. It is the one write to the
// environment in the code base; nothing reads it but the allocator.
//
// dirty_decay_ms:1000 (chdb's build: 5000): freed pages go back to the system within a second instead of over
// 5 s. The engine frees a few hundred MB after each insert and merge, spread over per-CPU arenas and size
// classes that the next insert does not reuse: measured during an ingest of 1,000,000 events
// (bench/ingest-child.ts, load 6-12), the allocator held 365 MB resident for 64 MB allocated at the RSS peak
// (5000 ms) and 225-290 MB for 200-270 MB with 0 ms.
// Not 0: then every query's memory is given back as it is freed and faulted in again by the next one. On an AMD
// EPYC VM (2026-12-06, 100M events) a usage summary filtered by user took 20.9-21.1 ms p50 with 0, and 8.3-8.9
// with 1000 or 5000 (the same query alone, 200 users); the process's CPU time was mostly the kernel's.
process.env.JE_MALLOC_CONF ??= 'dirty_decay_ms:1000';
