import { constants as zlibConstants, deflateRawSync } from "node:zlib";

/** Builds a minimal one-font PDF by hand: one page per entry, each line drawn as text (none: no text layer). */
export function buildPdf(pages: string[][]): Uint8Array<ArrayBuffer> {
  const objects: string[] = [];
  const pageIds = pages.map((_, i) => 4 + i * 2);
  objects[1] = "<< /Type /Catalog /Pages 2 0 R >>";
  objects[2] = `<< /Type /Pages /Kids [${pageIds.map((id) => `${id} 0 R`).join(" ")}] /Count ${pages.length} >>`;
  objects[3] = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>";
  pages.forEach((lines, i) => {
    const stream = lines.length === 0
      ? "0 0 1 rg 10 10 50 50 re f"
      : `BT /F1 12 Tf 14 TL 72 720 Td ${lines.map((l) => `(${l.replace(/[()\\]/g, "\\$&")}) Tj T*`).join(" ")} ET`;
    objects[pageIds[i]] = `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents ${pageIds[i] + 1} 0 R >>`;
    objects[pageIds[i] + 1] = `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`;
  });
  let out = "%PDF-1.4\n";
  const offsets: number[] = [];
  for (let id = 1; id < objects.length; id++) {
    offsets[id] = out.length;
    out += `${id} 0 obj\n${objects[id]}\nendobj\n`;
  }
  const xref = out.length;
  out += `xref\n0 ${objects.length}\n0000000000 65535 f \n`;
  for (let id = 1; id < objects.length; id++) out += `${String(offsets[id]).padStart(10, "0")} 00000 n \n`;
  out += `trailer\n<< /Size ${objects.length} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return new Uint8Array(new TextEncoder().encode(out));
}

/**
 * A one-page PDF whose FlateDecode content stream inflates to `decodedMiB` MiB of zeros: one
 * compressed MiB repeated (each copy is a self-contained, byte-aligned deflate block), so a
 * gigabyte costs about a kilobyte per MiB and no time to build. `padBytes` of comment make the file larger.
 */
export function buildFlateBombPdf(decodedMiB: number, padBytes = 0): Uint8Array<ArrayBuffer> {
  const block = deflateRawSync(new Uint8Array(1 << 20), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
  const parts: Uint8Array[] = [new Uint8Array([0x78, 0x9c])];
  for (let i = 0; i < decodedMiB; i++) parts.push(block);
  const adler = (((decodedMiB * (1 << 20)) % 65521) << 16) | 1; // Adler-32 of n zero bytes
  parts.push(new Uint8Array([0x03, 0x00, adler >>> 24, (adler >>> 16) & 0xff, (adler >>> 8) & 0xff, adler & 0xff]));
  const stream = Buffer.concat(parts);
  const enc = (s: string) => Buffer.from(s, "latin1");
  const head = enc(
    "%PDF-1.4\n" + `%${"x".repeat(padBytes)}\n` +
      "1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n" +
      "2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n" +
      "3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>\nendobj\n" +
      `4 0 obj\n<< /Length ${stream.length} /Filter /FlateDecode >>\nstream\n`,
  );
  const tail = enc("\nendstream\nendobj\ntrailer\n<< /Size 5 /Root 1 0 R >>\n%%EOF\n");
  return new Uint8Array(Buffer.concat([head, stream, tail]));
}
