/**
 * The Connect handlers of commy.v1.CommyService: request → core → response.
 * No rule lives here (see src/core/commy-core.ts).
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { CommyService } from "../../gen/commy/v1/commy_service_pb.js";
import { ServiceSchema, TenantSchema, VariableSchema } from "../../gen/commy/v1/resources_pb.js";
import type { CommyCore, VariableInfo } from "../core/commy-core.js";
import type { ServiceRecord, TenantRecord } from "../store/control-store.js";
import { callerOf } from "./caller-context.js";
import { versionFromWire } from "./wire-versions.js";

export const toTenant = (t: TenantRecord) =>
  create(TenantSchema, {
    tenantId: t.tenantId,
    tenantName: t.tenantName,
    createdBy: t.createdBy,
    createdAt: timestampFromMs(t.createdAt),
  });

export const toService = (s: ServiceRecord) =>
  create(ServiceSchema, {
    tenantId: s.tenantId,
    serviceName: s.serviceName,
    serviceId: s.serviceId,
    createdBy: s.createdBy,
    createdAt: timestampFromMs(s.createdAt),
  });

const toVariable = (v: VariableInfo) =>
  create(VariableSchema, {
    variableName: v.name,
    version: BigInt(v.version),
    size: v.size,
    capacity: v.capacity,
  });

export function createCommyServiceHandlers(core: CommyCore): ServiceImpl<typeof CommyService> {
  return {
    createTenant: (req, ctx) => ({ tenant: toTenant(core.createTenant(callerOf(ctx), req)) }),
    getTenant: (req, ctx) => ({ tenant: toTenant(core.getTenant(callerOf(ctx), req.tenantId)) }),
    listTenants: (req, ctx) => {
      const page = core.listTenants(callerOf(ctx), req);
      return { tenants: page.items.map(toTenant), nextPageToken: page.next ?? "" };
    },
    deleteTenant: (req, ctx) => {
      core.deleteTenant(callerOf(ctx), req.tenantId);
      return {};
    },
    createService: async (req, ctx) => ({
      service: toService(await core.createService(callerOf(ctx), req)),
    }),
    getService: (req, ctx) => ({ service: toService(core.getService(callerOf(ctx), req)) }),
    listServices: (req, ctx) => {
      const page = core.listServices(callerOf(ctx), req.tenantId, req);
      return { services: page.items.map(toService), nextPageToken: page.next ?? "" };
    },
    deleteService: async (req, ctx) => {
      await core.deleteService(callerOf(ctx), req);
      return {};
    },
    allocateVariable: (req, ctx) => ({
      variable: toVariable(core.allocateVariable(callerOf(ctx), req)),
    }),
    readVariable: (req, ctx) => {
      const { data, version } = core.readVariable(callerOf(ctx), req);
      return { data, version: BigInt(version) };
    },
    writeVariable: async (req, ctx) => {
      const result = await core.writeVariable(callerOf(ctx), {
        tenantId: req.tenantId,
        serviceName: req.serviceName,
        variableName: req.variableName,
        data: req.data,
        expectedVersion: versionFromWire(req.expectedVersion),
        createIfMissing: req.createIfMissing,
        signal: ctx.signal,
      });
      return { version: BigInt(result.version) };
    },
    deallocateVariable: async (req, ctx) => {
      await core.deallocateVariable(callerOf(ctx), req, ctx.signal);
      return {};
    },
    listVariables: (req, ctx) => ({
      variables: core.listVariables(callerOf(ctx), req).map(toVariable),
    }),
    getServiceFile: (req, ctx) => {
      const file = core.serviceFile(callerOf(ctx), req);
      return { serviceId: file.serviceId, path: file.path, size: BigInt(file.size) };
    },
  };
}
