/**
 * The files port, shaped after OpenAI's Files API: a tenant's uploaded files (today training data for
 * fine-tuning), their bytes, and nothing else. Another tenant's file is not_found, never forbidden.
 * An upload is validated whole before anything is stored: a refused file leaves no trace.
 */

/** The purposes OpenAI's upload accepts (CreateFileRequest.purpose). */
export const OPENAI_FILE_PURPOSES = ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"] as const;

/** The purposes this platform stores: training data for fine-tuning jobs. */
export const FILE_PURPOSES = ["fine-tune"] as const;
export type FilePurpose = (typeof FILE_PURPOSES)[number];

export interface FileUpload {
  tenantId: string;
  filename: string;
  purpose: FilePurpose;
  bytes: Uint8Array;
}

export interface FileObject {
  id: string;
  tenantId: string;
  filename: string;
  purpose: FilePurpose;
  /** Size in bytes. */
  bytes: number;
  sha256: string;
  /** Training examples (non-blank lines) the file holds. */
  examples: number;
  /** Tokens of all examples after the chat template, as the serving model counts them. */
  tokens: number;
  /** Unix ms. */
  createdAt: number;
}

export interface FileListQuery {
  purpose?: FilePurpose;
  /** Most files returned; default all. */
  limit?: number;
  /** The id after which the page starts (OpenAI's cursor); invalid_request when the tenant has no such file. */
  after?: string;
  /** By creation time; default "desc" (newest first), as OpenAI. */
  order?: "asc" | "desc";
}

export interface FilePage {
  data: FileObject[];
  /** Whether more files follow the last one in `data`. */
  hasMore: boolean;
}

export interface Files {
  /** Validates (size, line count, training examples against the model) and stores; invalid_request listing the bad lines, too_large over a limit. */
  upload(upload: FileUpload): Promise<FileObject>;
  list(tenantId: string, query?: FileListQuery): Promise<FilePage>;
  /** not_found when missing or another tenant's. */
  get(tenantId: string, id: string): Promise<FileObject>;
  /** The bytes as uploaded; not_found as `get`. */
  content(tenantId: string, id: string): Promise<Uint8Array>;
  /** The same bytes as a stream, where the plane has one to give (an HTTP client); the edge's download prefers it. */
  contentStream?(tenantId: string, id: string): Promise<ReadableStream<Uint8Array>>;
  /** Removes the file and its bytes; not_found as `get`. */
  delete(tenantId: string, id: string): Promise<FileObject>;
}
