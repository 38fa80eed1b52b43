// Turns a failed request validation into the contract's 400, naming the parameter at fault.
import type { Hook } from '@hono/zod-openapi';
import { ValidationError } from '../core/errors.ts';

// biome-ignore lint/suspicious/noExplicitAny: the hook is shared by routes of every input type.
export const validationHook: Hook<any, any, any, any> = (result) => {
  if (result.success) return;
  const issue = result.error.issues[0];
  const field = issue?.path.map(String).join('.') || result.target;
  let message = issue?.message ?? 'is invalid';
  if (issue?.code === 'invalid_type' && issue.input === undefined) message = 'is required';
  if (issue?.code === 'unrecognized_keys') message = `unknown parameter ${issue.keys.join(', ')}`;
  throw new ValidationError(field, message);
};
