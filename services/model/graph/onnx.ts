/**
 * Emits a graph IR (./ir.ts) as an ONNX ModelProto with onnx-buf. Large initializers go to an
 * external data file beside the .onnx (ONNX resolves `location` relative to the model file), so
 * load the model by path: `InferenceSession.create(files.modelPath)`.
 */
import { closeSync, openSync } from "node:fs";
import { mkdir, open, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type ModelProto,
  type TensorProto,
  type ValueInfoProto,
} from "onnx-buf";
import { readFully } from "../read-fully.ts";
import { isFileBytes, onnxDataType, type Attr, type FileBytes, type Graph, type Tensor, type Value } from "./ir.ts";

/** Standard-domain opset; onnxruntime 1.30 implements it fully on CPU. */
export const ONNX_OPSET = 21;
const IR_VERSION = 10n;
const MS_DOMAIN = "com.microsoft";
/** Initializers at least this large go to external data. */
const DEFAULT_EXTERNAL_THRESHOLD = 1024;
const ALIGNMENT = 64;

/** Where an initializer already lies in a shared external data file (see `EmitOptions.place`). */
export interface ExternalPlacement {
  /** File name relative to the .onnx. */
  location: string;
  offset: number;
}

export interface EmitOptions {
  /** File name (relative to the .onnx) for external data; omit to keep everything inline. */
  externalDataFile?: string;
  /**
   * Places a large initializer in a file written by someone else (services/model/weight-file.ts, one
   * per model shared by every graph variant): the tensor is referenced there and not emitted. Takes
   * precedence over `externalDataFile`; an initializer it returns nothing for is handled as without it.
   */
  place?: (name: string, bytes: Uint8Array) => ExternalPlacement | undefined;
  /**
   * Initializers whose bytes lie in a file (`FileBytes`) are referenced there, by file name: load the
   * model with that file's folder as its external data folder. All such files must share one folder.
   * Without it they are read and emitted like in-memory ones.
   */
  referenceFiles?: boolean;
  externalThreshold?: number;
  producer?: string;
}

export interface EmittedModel {
  model: Uint8Array;
  /** Chunks of the external data file, in order (padding included). */
  externalData: Uint8Array[];
}

export interface OnnxFiles {
  modelPath: string;
  dataPath: string;
}

/** Encodes the graph; with `externalDataFile`, large initializers are referenced, not embedded. */
export function emitOnnx(g: Graph, options: EmitOptions = {}): EmittedModel {
  const threshold = options.externalThreshold ?? DEFAULT_EXTERNAL_THRESHOLD;
  const externalData: Uint8Array[] = [];
  let offset = 0;
  const folders = new Set<string>();
  const initializer = g.initializers.map(({ value, tensor: { dtype, shape, data } }) => {
    if (isFileBytes(data) && options.referenceFiles) {
      folders.add(dirname(data.path));
      if (folders.size > 1) throw new Error(`emitOnnx: initializers in files of several folders (${[...folders].join(", ")}); onnxruntime reads external data from one`);
      return externalTensorProto(value.name, { dtype, shape }, basename(data.path), data.offset, data.byteLength);
    }
    const tensor = { dtype, shape, data: isFileBytes(data) ? readFileBytes(data) : data };
    const bytes = tensorBytes(tensor);
    if (bytes.byteLength < threshold) return tensorProto(value.name, tensor, bytes);
    const placed = options.place?.(value.name, bytes);
    if (placed) return externalTensorProto(value.name, tensor, placed.location, placed.offset, bytes.byteLength);
    if (!options.externalDataFile) return tensorProto(value.name, tensor, bytes);
    const pad = (ALIGNMENT - (offset % ALIGNMENT)) % ALIGNMENT;
    if (pad) externalData.push(new Uint8Array(pad));
    offset += pad;
    const proto = externalTensorProto(value.name, tensor, options.externalDataFile, offset, bytes.byteLength);
    externalData.push(bytes);
    offset += bytes.byteLength;
    return proto;
  });

  const graph = create(GraphProtoSchema, {
    name: g.name,
    node: g.nodes.map((n) =>
      create(NodeProtoSchema, {
        name: n.name,
        opType: n.op,
        domain: n.domain,
        input: n.inputs.map((v) => v?.name ?? ""),
        output: n.outputs.map((v) => v.name),
        attribute: Object.entries(n.attrs).map(([name, a]) => attributeProto(name, a)),
      }),
    ),
    input: g.inputs.map(valueInfo),
    output: g.outputs.map(valueInfo),
    initializer,
  });
  const usesMs = g.nodes.some((n) => n.domain === MS_DOMAIN);
  const model: ModelProto = create(ModelProtoSchema, {
    irVersion: IR_VERSION,
    producerName: options.producer ?? "switchyard",
    opsetImport: [
      create(OperatorSetIdProtoSchema, { domain: "", version: BigInt(ONNX_OPSET) }),
      ...(usesMs ? [create(OperatorSetIdProtoSchema, { domain: MS_DOMAIN, version: 1n })] : []),
    ],
    graph,
  });
  return { model: toBinary(ModelProtoSchema, model), externalData };
}

/**
 * Writes `<dir>/<base>.onnx` and `<dir>/<base>.bin` atomically (temporary names, then rename),
 * so a crash never leaves a half-written model that looks complete. Temporary files of writers
 * that died (killed mid-write: their pid is gone) are swept first, so crashes don't fill the disk.
 */
export async function writeOnnx(g: Graph, dir: string, base = "model"): Promise<OnnxFiles> {
  await mkdir(dir, { recursive: true });
  await sweepOrphanedTemporaries(dir);
  const dataName = `${base}.bin`;
  const { model, externalData } = emitOnnx(g, { externalDataFile: dataName });
  const modelPath = join(dir, `${base}.onnx`);
  const dataPath = join(dir, dataName);
  const tmpSuffix = `.tmp-${process.pid}-${Date.now()}`;
  try {
    await writeChunks(dataPath + tmpSuffix, externalData);
    await writeChunks(modelPath + tmpSuffix, [model]);
    await rename(dataPath + tmpSuffix, dataPath);
    await rename(modelPath + tmpSuffix, modelPath);
  } catch (err) {
    await rm(dataPath + tmpSuffix, { force: true });
    await rm(modelPath + tmpSuffix, { force: true });
    throw err;
  }
  return { modelPath, dataPath };
}

/** Writes one file atomically (a temporary name, synced, then renamed), sweeping dead writers' temporaries first. */
export async function writeFileAtomically(path: string, chunks: Uint8Array[]): Promise<void> {
  await sweepOrphanedTemporaries(dirname(path));
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    await writeChunks(tmp, chunks);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

const TEMPORARY = /\.tmp-(\d+)-\d+$/;

export async function sweepOrphanedTemporaries(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const pid = TEMPORARY.exec(name)?.[1];
    if (pid !== undefined && !isAlive(Number(pid))) await rm(join(dir, name), { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function writeChunks(path: string, chunks: Uint8Array[]): Promise<void> {
  const file = await open(path, "w");
  try {
    for (const chunk of chunks) await file.write(chunk);
    await file.sync();
  } finally {
    await file.close();
  }
}

function readFileBytes({ path, offset, byteLength }: FileBytes): Uint8Array {
  const bytes = new Uint8Array(byteLength);
  const fd = openSync(path, "r");
  try {
    readFully(fd, bytes, offset, path);
  } finally {
    closeSync(fd);
  }
  return bytes;
}

function externalTensorProto(name: string, t: Pick<Tensor, "dtype" | "shape">, location: string, offset: number, length: number): TensorProto {
  const proto = tensorProto(name, t, new Uint8Array(0));
  proto.dataLocation = TensorProto_DataLocation.EXTERNAL;
  proto.externalData = [entry("location", location), entry("offset", String(offset)), entry("length", String(length))];
  return proto;
}

function entry(key: string, value: string) {
  return create(StringStringEntryProtoSchema, { key, value });
}

function tensorBytes(t: Tensor): Uint8Array {
  const d = t.data;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

function tensorProto(name: string, t: Pick<Tensor, "dtype" | "shape">, raw: Uint8Array): TensorProto {
  return create(TensorProtoSchema, {
    name,
    dataType: onnxDataType(t.dtype),
    dims: t.shape.map(BigInt),
    rawData: raw.byteLength ? (new Uint8Array(raw) as Uint8Array<ArrayBuffer>) : new Uint8Array(0),
  });
}

function valueInfo(v: Value): ValueInfoProto {
  const shape = v.shape
    ? create(TensorShapeProtoSchema, {
        dim: v.shape.map((d) =>
          create(TensorShapeProto_DimensionSchema, {
            value: typeof d === "number" ? { case: "dimValue", value: BigInt(d) } : { case: "dimParam", value: d },
          }),
        ),
      })
    : undefined;
  return create(ValueInfoProtoSchema, {
    name: v.name,
    type: create(TypeProtoSchema, {
      value: { case: "tensorType", value: create(TypeProto_TensorSchema, { elemType: onnxDataType(v.dtype), shape }) },
    }),
  });
}

function attributeProto(name: string, a: Attr): AttributeProto {
  const T = AttributeProto_AttributeType;
  switch (a.kind) {
    case "int":
      return create(AttributeProtoSchema, { name, type: T.INT, i: BigInt(a.value) });
    case "float":
      return create(AttributeProtoSchema, { name, type: T.FLOAT, f: a.value });
    case "string":
      return create(AttributeProtoSchema, { name, type: T.STRING, s: new TextEncoder().encode(a.value) as Uint8Array<ArrayBuffer> });
    case "ints":
      return create(AttributeProtoSchema, { name, type: T.INTS, ints: a.value.map(BigInt) });
    case "floats":
      return create(AttributeProtoSchema, { name, type: T.FLOATS, floats: a.value });
    case "tensor":
      return create(AttributeProtoSchema, { name, type: T.TENSOR, t: tensorProto(name, a.value, tensorBytes(a.value)) });
  }
}
