// The page's one way to the API: the key lives in this tab's session storage and travels only as the
// bearer header (never in a URL, never logged). Errors are OpenAI's JSON bodies, thrown as ApiError;
// a 401 (a revoked key, a disabled tenant) is also announced as the window event "switchyard:unauthorized".
const KEY = "switchyard.apiKey";

export const session = {
  key: () => sessionStorage.getItem(KEY),
  set: (key) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code ?? null;
    if (status === 401) window.dispatchEvent(new CustomEvent("switchyard:unauthorized", { detail: this.message }));
  }
}

function headers(extra = {}) {
  const key = session.key();
  return key ? { ...extra, authorization: `Bearer ${key}` } : extra;
}

async function failure(res) {
  const body = await res.json().catch(() => null);
  return new ApiError(res.status, body);
}

/** fetch under /v1 with the key; `json` is sent as the body. Resolves to the parsed JSON (or text for non-JSON). */
export async function api(path, { method = "GET", json, body, signal } = {}) {
  const init = { method, signal, headers: headers(json === undefined ? {} : { "content-type": "application/json" }) };
  init.body = json === undefined ? body : JSON.stringify(json);
  const res = await fetch(path, init);
  if (!res.ok) throw await failure(res);
  const type = (res.headers.get("content-type") ?? "").split(";")[0].trim();
  return type === "application/json" ? res.json() : res.text();
}

/** POSTs `json` and yields each server-sent event's data, parsed, until [DONE]; abort `signal` to stop. */
export async function* streamEvents(path, json, signal) {
  const res = await fetch(path, { method: "POST", signal, headers: headers({ "content-type": "application/json" }), body: JSON.stringify(json) });
  if (!res.ok) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (data === "[DONE]") return;
      if (data) yield JSON.parse(data);
    }
  }
}

/** Multipart upload with progress (fetch has no upload progress): `onProgress(fraction)`. */
export function upload(path, form, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    const key = session.key();
    if (key) xhr.setRequestHeader("authorization", `Bearer ${key}`);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onerror = () => reject(new ApiError(0, { error: { message: "Network error during upload." } }));
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {}
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body));
    };
    xhr.send(form);
  });
}
