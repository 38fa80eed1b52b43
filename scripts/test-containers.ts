// `npm run test:containers`: see test/helpers/containers.ts.
import { npxSuite, runContainerSuite, testcontainersRuntime } from '../test/helpers/containers.ts';

process.exitCode = await runContainerSuite(
  testcontainersRuntime(process.env),
  npxSuite,
  process.env,
  (line) => process.stdout.write(`${line}\n`),
);
