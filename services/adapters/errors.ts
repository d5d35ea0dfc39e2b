import { PlaneError, type PlaneErrorKind } from "../../ports/errors.ts";

/** Why an adapter was refused; `kind` (the port's error kind) follows from it. */
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
  | "missing_tensor"
  | "too_many_virtual_tokens"
  | "not_found"
  | "forbidden"
  | "cache_full"
  | "over_cache_budget";

const KIND_OF: Partial<Record<AdapterErrorCode, PlaneErrorKind>> = {
  not_found: "not_found",
  forbidden: "forbidden",
  too_large: "too_large",
  cache_full: "busy",
};

/** The HTTP code of each refusal: its own name, except where the edge's generic one reads as before. */
const HTTP_CODE_OF: Partial<Record<AdapterErrorCode, string>> = {
  not_found: "not_found",
  forbidden: "forbidden",
  too_large: "payload_too_large",
  cache_full: "adapter_cache_full",
};

/** A refused adapter, upload or lookup, with a message that names the exact reason. */
export class AdapterError extends PlaneError {
  constructor(
    readonly reason: AdapterErrorCode,
    message: string,
    param?: string,
  ) {
    super(KIND_OF[reason] ?? "invalid_request", message, { code: HTTP_CODE_OF[reason] ?? reason, param });
    this.name = "AdapterError";
  }
}
