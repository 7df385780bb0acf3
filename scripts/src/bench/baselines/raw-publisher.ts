// The broker's ceiling for measure 1: amqplib publishing confirmed, mandatory, persistent work
// messages to the same quorum queue the dispatcher fills (tasks.medium, through the tasks exchange,
// in the measure's own vhost), with a sliding window of unconfirmed messages and nothing else: no
// database, no claim, no record. Says 'ready' to the parent once connected, and publishes when told
// 'start'.
//   env: AMQP_URL, RAW_COUNT (messages), RAW_WINDOW (unconfirmed messages at most)
import { assertTopology, buildTopology } from '@task-pipeline/rabbitmq';
import amqp from 'amqplib';
import { RAW_EXCHANGE, RAW_ROUTING_KEY, rawWorkMessage } from './raw-message.js';

function positiveInt(name: string): number {
  const value = Number(process.env[name]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

async function main(): Promise<void> {
  const { AMQP_URL } = process.env;
  if (!AMQP_URL) throw new Error('AMQP_URL is required');
  const count = positiveInt('RAW_COUNT');
  const window = positiveInt('RAW_WINDOW');
  const connection = await amqp.connect(AMQP_URL, { clientProperties: { connection_name: 'raw-publisher' } });
  const channel = await connection.createConfirmChannel();
  await assertTopology(channel, buildTopology({ role: 'producer' }));
  channel.on('return', () => console.error('raw-publisher: a message came back unroutable'));

  let sent = 0;
  let inFlight = 0;
  let waitingForDrain = false;
  let stopping = false;
  const pump = () => {
    while (!stopping && !waitingForDrain && inFlight < window && sent < count) {
      const { body, options } = rawWorkMessage(sent);
      sent += 1;
      inFlight += 1;
      const writable = channel.publish(RAW_EXCHANGE, RAW_ROUTING_KEY, body, options, (err: unknown) => {
        inFlight -= 1;
        if (err) console.error('raw-publisher: nacked', err);
        pump();
      });
      // The socket's buffer is full: wait for it to drain instead of queueing without bound.
      if (!writable) {
        waitingForDrain = true;
        channel.once('drain', () => {
          waitingForDrain = false;
          pump();
        });
      }
    }
  };

  const stop = () => {
    stopping = true;
    channel
      .close()
      .catch(() => undefined)
      .then(() => connection.close())
      .catch(() => undefined)
      .finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.on('message', (message) => {
    if (message === 'start') pump();
  });
  process.send?.('ready');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
