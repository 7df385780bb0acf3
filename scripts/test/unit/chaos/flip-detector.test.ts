import { describe, expect, it } from 'vitest';
import { createFlipDetector, type Observation } from '../../../src/chaos/flip-detector.js';

const id = '00000000-0000-4000-8000-000000000001';
const obs = (status: string, attempts: number, error: string | null = null): Observation => ({
  taskId: id,
  status,
  attempts,
  error,
});

describe('flip detector', () => {
  it('accepts the normal path and repeated terminal samples', () => {
    const d = createFlipDetector();
    for (const o of [obs('waiting', 0), obs('sent', 1), obs('success', 1), obs('success', 1)]) d.observe(o);
    expect(d.flips()).toEqual([]);
    expect(d.settledCount()).toBe(1);
  });

  it('flags success → error and a terminal task going back to sent', () => {
    const a = createFlipDetector();
    a.observe(obs('success', 1));
    a.observe(obs('error', 1, 'boom'));
    expect(a.flips()).toHaveLength(1);

    const b = createFlipDetector();
    b.observe(obs('error', 2, 'boom'));
    b.observe(obs('sent', 2));
    expect(b.flips()[0]?.to.status).toBe('sent');
  });

  it('allows error → success for the same attempt only when the error was delivery_limit', () => {
    const d = createFlipDetector();
    d.observe(obs('error', 1, 'delivery_limit'));
    d.observe(obs('success', 1));
    expect(d.flips()).toEqual([]);

    const e = createFlipDetector();
    e.observe(obs('error', 1, 'simulated failure'));
    e.observe(obs('success', 1));
    expect(e.flips()).toHaveLength(1);
  });

  it('flags a newer attempt of a terminal task that nobody redrove', () => {
    const d = createFlipDetector();
    d.observe(obs('success', 1));
    d.observe(obs('sent', 2));
    expect(d.flips()).toHaveLength(1);
  });

  it('allows one departure per redrive, whatever the new attempt number', () => {
    const d = createFlipDetector();
    d.observe(obs('error', 1, 'x'));
    d.allowRedrive(id);
    d.observe(obs('sent', 3));
    d.observe(obs('success', 3));
    expect(d.flips()).toEqual([]);
    d.observe(obs('sent', 4));
    expect(d.flips()).toHaveLength(1);
  });

  it('accepts a redriven task seen terminal again without the intermediate states', () => {
    const d = createFlipDetector();
    d.observe(obs('error', 1, 'x'));
    d.allowRedrive(id);
    d.observe(obs('success', 3));
    d.observe(obs('success', 3));
    expect(d.flips()).toEqual([]);
  });

  it('flags an attempt that went backwards', () => {
    const d = createFlipDetector();
    d.observe(obs('success', 3));
    d.allowRedrive(id);
    d.observe(obs('success', 2));
    expect(d.flips()).toHaveLength(1);
  });
});
