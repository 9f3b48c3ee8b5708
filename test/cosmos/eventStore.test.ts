// The event-store contract inside the Workers runtime: Cosmos (local emulator) and the in-memory store.
import { MemoryEventStore } from "../../src/core/memoryEventStore.ts";
import { store } from "../helpers.ts";
import { eventStoreContract } from "./contract.ts";

eventStoreContract("Cosmos (workerd)", store);
eventStoreContract("in-memory", () => new MemoryEventStore());
