// Typed context variables of the Hono app: who is calling, and the request id.
export interface Identity {
  /** Stable key for limits and ownership: `jwt:<iss>:<sub>` or `key:<id>`. */
  id: string;
  sub: string;
  issuer: string | undefined;
  scopes: ReadonlySet<string>;
  roles: ReadonlySet<string>;
  /** Set when the token is bound to one team: it sees only that team. */
  teamId: string | undefined;
}

export interface AppEnv {
  Variables: {
    requestId: string;
    identity: Identity;
  };
}
