export * from './backoff.js';
export * from './coalesce.js';
export * from './env.js';
