/** Why an adapter was refused; routes map these codes to HTTP statuses. */
export type AdapterErrorCode =
  | "invalid_archive"
  | "unsafe_archive_entry"
  | "too_large"
  | "missing_file"
  | "unsafe_format"
  | "invalid_config"
  | "unsupported_option"
  | "unknown_module"
  | "shape_mismatch"
  | "rank_too_high"
  | "corrupt_safetensors"
  | "non_finite_weights"
  | "too_many_tensors"
  | "not_found"
  | "forbidden"
  | "cache_full"
  | "over_cache_budget";

/** A refused adapter, upload or lookup, with a message that names the exact reason. */
export class AdapterError extends Error {
  constructor(
    readonly code: AdapterErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "AdapterError";
  }
}

export const isAdapterError = (e: unknown): e is AdapterError => e instanceof AdapterError;
