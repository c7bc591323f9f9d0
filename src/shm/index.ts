/** src/shm: service files, mapped into memory and shared between processes. */
export { ServiceFile, VariableHandle } from "./service-file.js";
export type {
  ChangesOptions,
  VariableChange,
  VariableInfo,
  VersionedValue,
  WriteOptions,
} from "./service-file.js";
export { OwnedServiceFile } from "./owned-service-file.js";
export type { AllocateOptions, CreateServiceFileOptions } from "./owned-service-file.js";
export { ShmError, type ShmErrorCode } from "./shm-error.js";
export { MAX_VALUE_SIZE } from "./layout.js";
