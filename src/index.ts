// Worker entry: the HTTP API, the queue consumers, and the payment Durable Object class.
import { app } from "./http/app.ts";
import { consume } from "./queue/consumer.ts";
import { services } from "./wiring.ts";

export { PaymentObject } from "./durable/paymentObject.ts";

export default {
  fetch: app.fetch,
  async queue(batch, env) {
    await consume(batch, env, services(env).config, batch.queue.endsWith("-dlq"));
  },
} satisfies ExportedHandler<Env>;
