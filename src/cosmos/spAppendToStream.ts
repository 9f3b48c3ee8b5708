// The append stored procedure, kept as plain JavaScript text (a stringified TS function would gain bundler
// helpers such as __name that do not exist on the server). VERSIONED: raise the number in the marker for any change in
// behaviour, so that provisioning replaces an older body (and an older release leaves a newer one).

export const spAppendToStreamId = "spAppendToStream";
export const spAppendToStreamVersion = "spAppendToStream v3";

/**
 * spAppendToStream(streamId, expectedVersion, eventsJson), Regis Pay's name and arguments, in the stream's partition:
 * - expectedVersion 0 means a new stream; otherwise it must equal the highest stored version;
 * - each event's id must be "<streamId>:<version>": two racing appends at one version then collide on the id (Cosmos
 *   refuses the second document), which is what keeps a stream from forking where executions run concurrently;
 * - all events are created or none (a throw rolls back every write of the execution);
 * - on conflict nothing is written and the current version comes back: { ok: false, currentVersion };
 * - if the events are already stored at those versions with the same event ids (a retry after a timeout),
 *   it answers success without writing again: { ok: true, version, duplicate: true }.
 */
export const spAppendToStreamSource = `// ${spAppendToStreamVersion}
function spAppendToStream(streamId, expectedVersion, eventsJson) {
  var context = getContext();
  var collection = context.getCollection();
  var response = context.getResponse();
  var events = typeof eventsJson === "string" ? JSON.parse(eventsJson) : eventsJson;
  var last = expectedVersion + events.length;

  var head = {
    query: "SELECT TOP 1 VALUE c.stream.version FROM c WHERE c.stream.id = @streamId ORDER BY c.stream.version DESC",
    parameters: [{ name: "@streamId", value: streamId }]
  };
  if (!collection.queryDocuments(collection.getSelfLink(), head, {}, onHead)) throw new Error("spAppendToStream: query not accepted");

  function onHead(err, versions) {
    if (err) throw err;
    var current = versions.length > 0 ? versions[0] : 0;
    if (current === expectedVersion) return create(0);
    if (events.length > 0 && current >= last) return checkRetry(current);
    response.setBody({ ok: false, currentVersion: current });
  }

  function create(i) {
    if (i === events.length) return response.setBody({ ok: true, version: last });
    var event = events[i];
    if (event.stream.id !== streamId || event.stream.version !== expectedVersion + i + 1 || event.id !== streamId + ":" + event.stream.version) throw new Error("spAppendToStream: event " + i + " is not at the next version of " + streamId);
    var accepted = collection.createDocument(collection.getSelfLink(), event, { disableAutomaticIdGeneration: true }, function (err) {
      if (err) throw err;
      create(i + 1);
    });
    if (!accepted) throw new Error("spAppendToStream: write not accepted");
  }

  function checkRetry(current) {
    var stored = {
      query: "SELECT c.stream.version, c.eventId FROM c WHERE c.stream.id = @streamId AND c.stream.version > @from AND c.stream.version <= @to",
      parameters: [{ name: "@streamId", value: streamId }, { name: "@from", value: expectedVersion }, { name: "@to", value: last }]
    };
    var accepted = collection.queryDocuments(collection.getSelfLink(), stored, {}, function (err, docs) {
      if (err) throw err;
      var same = docs.length === events.length && docs.every(function (d) {
        var e = events[d.version - expectedVersion - 1];
        return e && e.eventId && d.eventId === e.eventId;
      });
      response.setBody(same ? { ok: true, version: last, duplicate: true } : { ok: false, currentVersion: current });
    });
    if (!accepted) throw new Error("spAppendToStream: query not accepted");
  }
}
`;
