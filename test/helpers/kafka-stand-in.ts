import type { Kafka, Message, PartitionMetadata, ProducerRecord, RecordMetadata } from 'kafkajs'

// For unit tests of the shipper's own logic only (integration tests use a real Kafka): an in-process stand-in for
// the kafkajs client with one topic, `telemetry`, that answers every send for every partition it names.

export const partitionMetadata = (n: number): PartitionMetadata[] => Array.from({ length: n }, (_, partitionId) => ({ partitionId, leader: 1, partitionErrorCode: 0, replicas: [1], isr: [1] }))

/** The client; each send is pushed onto `sends`. */
export function standInKafka (sends: ProducerRecord[], partitions: number): Kafka {
  const admin = {
    connect: async () => {},
    disconnect: async () => {},
    listTopics: async () => ['telemetry'],
    fetchTopicMetadata: async () => ({ topics: [{ name: 'telemetry', partitions: partitionMetadata(partitions) }] })
  }
  const producer = {
    connect: async () => {},
    disconnect: async () => {},
    send: async (record: ProducerRecord): Promise<RecordMetadata[]> => {
      sends.push(record)
      const answered = new Set(record.messages.map((m: Message) => m.partition as number))
      return [...answered].map((partition) => ({ topicName: record.topic, partition, errorCode: 0 }))
    }
  }
  return { admin: () => admin, producer: () => producer } as unknown as Kafka
}
