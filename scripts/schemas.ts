// `npm run schemas`: writes schemas/*.json from the zod event schema (core/event-schemas.ts). Run it after
// changing core/events.ts; a unit test fails while the checked-in files differ from what this writes.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { eventJsonSchemas, schemaFileText } from '../core/event-schemas.ts';

const dir = resolve(import.meta.dirname, '..', 'schemas');
mkdirSync(dir, { recursive: true });
const schemas = eventJsonSchemas();
for (const file of readdirSync(dir)) {
  if (file.endsWith('.json') && !(file.slice(0, -5) in schemas)) rmSync(join(dir, file));
}
for (const [name, schema] of Object.entries(schemas)) {
  writeFileSync(join(dir, `${name}.json`), schemaFileText(schema));
}
process.stdout.write(`wrote ${Object.keys(schemas).length} schemas to schemas/\n`);
