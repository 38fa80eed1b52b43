// The embedded engine's allocator settings. chdb's library carries its own jemalloc, which reads JE_MALLOC_CONF
// once, when the library loads: so this module is imported by embedded.ts ahead of chdb, and sets the variable
// (unless the operator already has) before chdb's import loads the library. It is the one write to the
// environment in the code base; nothing reads it but the allocator.
//
// dirty_decay_ms:0 (chdb's build: 5000): freed pages go back to the system at once instead of over 5 s. The
// engine frees a few hundred MB after each insert and merge, spread over per-CPU arenas and size classes that
// the next insert does not reuse: measured during an ingest of 1,000,000 events (bench/ingest-child.ts, load
// 6-12), the allocator held 365 MB resident for 64 MB allocated at the RSS peak (5000 ms) and 225-290 MB for
// 200-270 MB with 0 ms.
process.env.JE_MALLOC_CONF ??= 'dirty_decay_ms:0';
