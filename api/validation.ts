// Turns a failed request validation into the contract's 400, naming the parameter at fault.
import type { Hook } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { ValidationError } from '../core/errors.ts';

/** The first query parameter given more than once: every parameter of the read routes takes one value. */
function repeatedParam(c: Context): string | undefined {
  for (const [name, values] of Object.entries(c.req.queries())) if (values.length > 1) return name;
  return undefined;
}

// biome-ignore lint/suspicious/noExplicitAny: the hook is shared by routes of every input type.
export const validationHook: Hook<any, any, any, any> = (result, c) => {
  if (result.success) return;
  if (result.target === 'query') {
    const repeated = repeatedParam(c);
    if (repeated !== undefined) throw new ValidationError(repeated, 'must be given once');
  }
  const issue = result.error.issues[0];
  if (issue?.code === 'unrecognized_keys') {
    throw new ValidationError(issue.keys[0] ?? result.target, 'is not a parameter of this route');
  }
  const field = issue?.path.map(String).join('.') || result.target;
  let message = issue?.message ?? 'is invalid';
  // Zod's own wording for a missing value; custom messages already say what they mean.
  if (issue?.code === 'invalid_type' && /received undefined$/.test(message)) message = 'is required';
  throw new ValidationError(field, message);
};
