/**
 * Who is calling: every core operation takes a Caller, whichever transport
 * the call came through. The identity issue fills in principals and their
 * grants; until a call is authenticated its principal is undefined.
 */

/** An authenticated identity. */
export interface Principal {
  /** Stable id, recorded as created_by and in the audit log. */
  id: string;
  /** Server admins manage tenants and principals and may do anything. */
  serverAdmin: boolean;
}

/** The caller of a core operation. */
export interface Caller {
  /** Undefined when the call carried no valid credentials. */
  principal: Principal | undefined;
  /** Where the call came from (for audit), e.g. "127.0.0.1:53012". */
  clientAddress?: string;
}

/** The bootstrap administrator of the server. */
export const SERVER_ADMIN: Principal = { id: "admin", serverAdmin: true };

/** A caller acting as the server admin (start-up tasks, tests, the open default). */
export const SERVER_ADMIN_CALLER: Caller = { principal: SERVER_ADMIN };
