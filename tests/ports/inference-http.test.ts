/** The Inference port's contract against the HTTP client, talking to a real `switchyard serve inference` on loopback (stories260k). */
import { HttpInference } from "../../clients/inference.ts";
import type { Inference } from "../../ports/inference.ts";
import { NODE_SECRET, spawnPlaneNode } from "../helpers/plane-node.ts";
import { inferenceContract } from "./inference.contract.ts";

inferenceContract(
  "HTTP client of an inference node",
  async (): Promise<Inference> => {
    const node = await spawnPlaneNode("inference");
    const client = new HttpInference({ url: node.url, secret: NODE_SECRET });
    return {
      model: () => client.model(),
      encode: (request) => client.encode(request),
      generate: (request) => client.generate(request),
      close: () => node.stop(),
    };
  },
  { id: "stories260k", contextLength: 512, vocabSize: 512 },
);
