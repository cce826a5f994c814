import { describe, expect, it } from 'vitest';
import {
  fromErrorMsg,
  NonRetriableError,
  OutOfMemoryError,
  registerErrorClasses,
  RetryAfterError,
  TaskError,
  toErrorMsg,
} from './errors.ts';
import { askAgainWaitMs, nextAttempt } from './retry.ts';
import { retryPolicy } from './task.ts';

describe('nextAttempt', () => {
  const policy = retryPolicy({ attempts: 3, backoffMs: 100, maxBackoffMs: 250 });
  it.each([
    ['backs off from the first delay', new TaskError('x'), 1, 0, 50],
    ['doubles it', new TaskError('x'), 2, 0.999_999, 200],
    ['caps it', new TaskError('x'), 3, 0.999_999, 250],
    ['waits what RetryAfter says', new RetryAfterError('slow', 1234), 1, 0.5, 1234],
  ])('%s', (_name, err, attempt, random, delayMs) => {
    expect(nextAttempt(err, attempt, policy, {}, () => random)!.delayMs).toBeCloseTo(delayMs, 3);
  });
  it('doubles the memory the failed attempt had after an out of memory, at once', () => {
    const next = nextAttempt(new OutOfMemoryError('oom', { memoryMiB: 2048 }), 1, policy, { memory: '1Gi' });
    expect(next).toMatchObject({ resources: { memory: '4096Mi' }, delayMs: 0 });
  });
  it('stops past the attempts and on non-retriable errors', () => {
    expect(nextAttempt(new TaskError('x'), 4, policy, {})).toBeUndefined();
    expect(nextAttempt(new NonRetriableError('x'), 1, policy, {})).toBeUndefined();
  });
});

describe('user error classes across the wire', () => {
  class Unexported extends NonRetriableError {
    override name = 'Unexported';
  }
  class Exported extends NonRetriableError {
    override name = 'Exported';
  }
  registerErrorClasses({ Exported, notAClass: 42 });

  it('an exported class comes back as itself, with its data', () => {
    const back = fromErrorMsg(toErrorMsg(new Exported('bad rows', { rows: 3 })));
    expect(back).toBeInstanceOf(Exported);
    expect(back).toBeInstanceOf(NonRetriableError);
    expect([back.name, back.message, back.data]).toEqual(['Exported', 'bad rows', { rows: 3 }]);
  });
  it('a class the caller does not know comes back as the runtime class it extends', () => {
    const wire = toErrorMsg(new Unexported('no'));
    expect(wire.classes).toEqual(['Unexported', 'NonRetriableError', 'TaskError']);
    const back = fromErrorMsg(wire);
    expect(back).toBeInstanceOf(NonRetriableError);
    expect(back.name).toBe('Unexported');
  });
  it('a plain error stays a TaskError with its name', () => {
    const back = fromErrorMsg(toErrorMsg(new TypeError('nope')));
    expect([back.constructor, back.name]).toEqual([TaskError, 'TypeError']);
  });
});

describe('askAgainWaitMs', () => {
  it.each([
    [0, 50],
    [1, 100],
    [2, 200],
    [3, 250],
    [40, 250],
  ])('after try %i waits %i ms', (attempt, ms) => {
    expect(askAgainWaitMs(attempt)).toBe(ms);
  });
});
