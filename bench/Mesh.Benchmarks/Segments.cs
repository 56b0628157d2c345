// Multi-segment byte sequences, as a pipe hands over data that arrived in several reads.
using System.Buffers;

namespace Mesh.Benchmarks;

/// <summary>Builds a <see cref="ReadOnlySequence{T}"/> of <c>data</c> split at the given offsets.</summary>
internal static class Segments
{
    public static ReadOnlySequence<byte> Split(byte[] data, params int[] cuts)
    {
        var start = 0;
        Segment? head = null;
        Segment? tail = null;
        foreach (var end in cuts.Append(data.Length))
        {
            var next = new Segment(data.AsMemory(start, end - start), tail);
            head ??= next;
            tail = next;
            start = end;
        }

        return new ReadOnlySequence<byte>(head!, 0, tail!, tail!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, Segment? previous)
        {
            Memory = memory;
            if (previous is not null)
            {
                RunningIndex = previous.RunningIndex + previous.Memory.Length;
                previous.Next = this;
            }
        }
    }
}
