// Whether an object is garbage-collected once nothing holds it: for the
// addon's objects, whose native side must let go of them (and outlive them
// only as long as their bound methods do, native/src/bound_methods.c).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const GC_ROUNDS = 50;

/**
 * Runs `make`, which returns what it keeps after making (and closing) an
 * object it registers; collects garbage until that object is gone, at most
 * GC_ROUNDS times. Returns what `make` kept and whether the object was collected.
 */
export async function keptAfterCollection<T>(
  make: (register: (object: object) => void) => T,
): Promise<{ kept: T; collected: boolean }> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let collected = false;
  const registry = new FinalizationRegistry(() => (collected = true));
  const kept = make((object) => registry.register(object, 'object'));
  for (let round = 0; round < GC_ROUNDS && !collected; round++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return { kept, collected };
}
