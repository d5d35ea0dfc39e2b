/**
 * The glibc malloc setting a serving process starts with (package.json `start`, infra/docker/Dockerfile).
 * glibc reads it once, when the process starts, so it cannot be set from inside.
 *
 * onnxruntime allocates each run's activations with malloc (its CPU arena is off, services/inference/engine.ts).
 * By default glibc raises its mmap threshold to the size of every large block freed (up to 32 MiB), so after one
 * large prefill or batch the next blocks of that size come from the heap, and stay there when freed: the
 * TinyLlama-shaped benchmark model held about 70 MiB more for good after 32 concurrent chats. A fixed threshold
 * maps every block of 1 MiB or more and unmaps it when freed; blocks that large live through one operator, whose
 * work dwarfs the page faults (prefill and decode speed unchanged within the benchmark's noise).
 */
export const SERVING_ALLOCATOR_ENV = { MALLOC_MMAP_THRESHOLD_: String(1 << 20) } as const;
