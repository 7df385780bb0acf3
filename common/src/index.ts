export * from './backoff.js';
export * from './coalesce.js';
