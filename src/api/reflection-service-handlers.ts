/**
 * gRPC server reflection (grpc.reflection.v1 and, for older tools,
 * v1alpha — the same messages in another package) over Connect, so that
 * grpcurl, `buf curl` and the like can list and call every RPC without
 * the .proto files. Answers come from the descriptors compiled into gen/.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { DescFile, DescMessage, DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  ServerReflection as ReflectionV1,
  type ServerReflectionRequest as RequestV1,
  type ServerReflectionResponse as ResponseV1,
  ServerReflectionResponseSchema as ResponseV1Schema,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflection as ReflectionV1alpha,
  type ServerReflectionRequest as RequestV1alpha,
  ServerReflectionResponseSchema as ResponseV1alphaSchema,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** gRPC status codes the reflection protocol puts in its error responses. */
const NOT_FOUND = 5;
const UNIMPLEMENTED = 12;

/** A response as plain fields: valid for v1 and for v1alpha alike. */
type Answer = Exclude<MessageInitShape<typeof ResponseV1Schema>, ResponseV1>;

/** What reflection can tell: the served services and every file they need. */
export class DescriptorIndex {
  readonly #serviceNames: string[];
  readonly #fileByName = new Map<string, DescFile>();
  readonly #fileBySymbol = new Map<string, DescFile>();
  readonly #extensions = new Map<string, Map<number, DescFile>>();

  constructor(services: readonly DescService[]) {
    this.#serviceNames = services.map((s) => s.typeName);
    for (const service of services) this.#addFile(service.file);
  }

  get serviceNames(): readonly string[] {
    return this.#serviceNames;
  }

  /** `file` and everything it imports, transitively, as serialized FileDescriptorProtos. */
  withDependencies(file: DescFile): Uint8Array[] {
    const seen = new Set<DescFile>();
    const visit = (f: DescFile): void => {
      if (seen.has(f)) return;
      seen.add(f);
      for (const dependency of f.dependencies) visit(dependency);
    };
    visit(file);
    return [...seen].map((f) => toBinary(FileDescriptorProtoSchema, f.proto));
  }

  fileByName(name: string): DescFile | undefined {
    return this.#fileByName.get(name);
  }

  fileBySymbol(symbol: string): DescFile | undefined {
    return this.#fileBySymbol.get(symbol);
  }

  fileByExtension(typeName: string, number: number): DescFile | undefined {
    return this.#extensions.get(typeName)?.get(number);
  }

  extensionNumbers(typeName: string): number[] | undefined {
    if (!this.#fileBySymbol.has(typeName)) return undefined;
    return [...(this.#extensions.get(typeName)?.keys() ?? [])];
  }

  #addFile(file: DescFile): void {
    const name = file.proto.name;
    if (this.#fileByName.has(name)) return;
    this.#fileByName.set(name, file);
    for (const dependency of file.dependencies) this.#addFile(dependency);
    for (const service of file.services) {
      this.#fileBySymbol.set(service.typeName, file);
      for (const method of service.methods) {
        this.#fileBySymbol.set(`${service.typeName}.${method.name}`, file);
      }
    }
    for (const e of file.enums) this.#fileBySymbol.set(e.typeName, file);
    for (const extension of file.extensions) this.#addExtension(file, extension);
    for (const message of file.messages) this.#addMessage(file, message);
  }

  #addMessage(file: DescFile, message: DescMessage): void {
    this.#fileBySymbol.set(message.typeName, file);
    for (const field of message.fields)
      this.#fileBySymbol.set(`${message.typeName}.${field.name}`, file);
    for (const e of message.nestedEnums) this.#fileBySymbol.set(e.typeName, file);
    for (const extension of message.nestedExtensions) this.#addExtension(file, extension);
    for (const nested of message.nestedMessages) this.#addMessage(file, nested);
  }

  #addExtension(
    file: DescFile,
    extension: { typeName: string; number: number; extendee: DescMessage },
  ): void {
    this.#fileBySymbol.set(extension.typeName, file);
    let numbers = this.#extensions.get(extension.extendee.typeName);
    if (numbers === undefined) {
      numbers = new Map();
      this.#extensions.set(extension.extendee.typeName, numbers);
    }
    numbers.set(extension.number, file);
  }
}

/** One reflection answer; the same for both protocol versions. */
function answer(index: DescriptorIndex, request: RequestV1 | RequestV1alpha): Answer {
  const { messageRequest } = request;
  const originalRequest: Answer["originalRequest"] = {
    host: request.host,
    messageRequest:
      messageRequest.case === "fileContainingExtension"
        ? {
            case: messageRequest.case,
            value: {
              containingType: messageRequest.value.containingType,
              extensionNumber: messageRequest.value.extensionNumber,
            },
          }
        : messageRequest.case === undefined
          ? { case: undefined }
          : { case: messageRequest.case, value: messageRequest.value },
  };
  const base = { validHost: request.host, originalRequest };
  const error = (code: number, message: string): Answer => ({
    ...base,
    messageResponse: { case: "errorResponse", value: { errorCode: code, errorMessage: message } },
  });
  const files = (file: DescFile | undefined, what: string): Answer =>
    file === undefined
      ? error(NOT_FOUND, `${what} not found`)
      : {
          ...base,
          messageResponse: {
            case: "fileDescriptorResponse",
            value: { fileDescriptorProto: index.withDependencies(file) },
          },
        };
  switch (messageRequest.case) {
    case "listServices":
      return {
        ...base,
        messageResponse: {
          case: "listServicesResponse",
          value: { service: index.serviceNames.map((name) => ({ name })) },
        },
      };
    case "fileByFilename":
      return files(index.fileByName(messageRequest.value), `file ${messageRequest.value}`);
    case "fileContainingSymbol":
      return files(index.fileBySymbol(messageRequest.value), `symbol ${messageRequest.value}`);
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = messageRequest.value;
      return files(
        index.fileByExtension(containingType, extensionNumber),
        `extension ${extensionNumber} of ${containingType}`,
      );
    }
    case "allExtensionNumbersOfType": {
      const numbers = index.extensionNumbers(messageRequest.value);
      if (numbers === undefined) return error(NOT_FOUND, `type ${messageRequest.value} not found`);
      return {
        ...base,
        messageResponse: {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: messageRequest.value, extensionNumber: numbers },
        },
      };
    }
    case undefined:
      return error(UNIMPLEMENTED, "the request names no question");
  }
}

export function createReflectionV1Handlers(
  index: DescriptorIndex,
): ServiceImpl<typeof ReflectionV1> {
  return {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) yield answer(index, request);
    },
  };
}

export function createReflectionV1alphaHandlers(
  index: DescriptorIndex,
): ServiceImpl<typeof ReflectionV1alpha> {
  return {
    async *serverReflectionInfo(requests) {
      // v1alpha's messages are v1's, field for field and number for number,
      // in another package: the v1 answer's bytes are the v1alpha answer.
      for await (const request of requests) {
        const bytes = toBinary(ResponseV1Schema, create(ResponseV1Schema, answer(index, request)));
        yield fromBinary(ResponseV1alphaSchema, bytes);
      }
    },
  };
}
