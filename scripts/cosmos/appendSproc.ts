// A generic append stored procedure (plain JavaScript source), used by the emulator's benchmark and contract tests.

/**
 * appendToStream(streamId, expectedVersion, events): reads the stream's highest `stream.version` in its partition,
 * and only when it equals expectedVersion (0 for a new stream) creates one document per event with id
 * `<streamId>:<version>`. Returns true when appended, false on a version mismatch; any error rolls everything back.
 * `events` is an array of `{ eventType, eventData }` or the same as a JSON string.
 */
export const APPEND_SPROC_ID = "appendToStream";

export const APPEND_SPROC_BODY = `function appendToStream(streamId, expectedVersion, events) {
  var collection = getContext().getCollection();
  var response = getContext().getResponse();
  var list = typeof events === "string" ? JSON.parse(events) : events;
  var accepted = collection.queryDocuments(
    collection.getSelfLink(),
    {
      query: "SELECT VALUE MAX(e.stream.version) FROM e WHERE e.stream.id = @streamId",
      parameters: [{ name: "@streamId", value: streamId }]
    },
    {},
    function (err, versions) {
      if (err) throw err;
      var current = versions.length > 0 ? versions[0] : 0;
      if (current !== expectedVersion) {
        response.setBody(false);
        return;
      }
      createAt(0);
    }
  );
  if (!accepted) throw new Error("The version query was not accepted.");

  function createAt(i) {
    if (i === list.length) {
      response.setBody(true);
      return;
    }
    var version = expectedVersion + i + 1;
    var doc = {
      id: streamId + ":" + version,
      stream: { id: streamId, version: version },
      eventType: list[i].eventType,
      eventData: list[i].eventData
    };
    var ok = collection.createDocument(collection.getSelfLink(), doc, function (err) {
      if (err) throw err;
      createAt(i + 1);
    });
    if (!ok) throw new Error("The write was not accepted.");
  }
}`;
