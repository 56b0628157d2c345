// The index rules of Consul's blocking-query docs, and Go durations.
using Mesh.Discovery.Consul;

namespace Mesh.Discovery.Tests.Consul;

public class BlockingIndexTests
{
    [Theory]
    [InlineData(0UL, 5UL, 5UL)]
    [InlineData(5UL, 9UL, 9UL)]
    [InlineData(9UL, 9UL, 9UL)]
    public void Next_IndexMovesForwardOrStays_SendsItBack(ulong previous, ulong returned, ulong expected) =>
        Assert.Equal(expected, BlockingIndex.Next(previous, returned));

    [Fact]
    public void Next_IndexWentBackwards_ResetsToZero() => Assert.Equal(0UL, BlockingIndex.Next(57, 3));

    [Fact]
    public void Next_ZeroAfterAHigherIndex_IsBackwardsAndResets() => Assert.Equal(0UL, BlockingIndex.Next(57, 0));

    [Theory]
    [InlineData(0UL)]
    [InlineData(1UL)]
    public void Next_ZeroReturned_KeepsAtLeastOne(ulong previous) => Assert.Equal(1UL, BlockingIndex.Next(previous, 0));

    [Theory]
    [InlineData("10s", 10_000)]
    [InlineData("5m", 300_000)]
    [InlineData("1m30s", 90_000)]
    [InlineData("250ms", 250)]
    [InlineData("1.5h", 5_400_000)]
    [InlineData("0", 0)]
    public void ConsulDuration_TryParse_GoSyntax(string text, int milliseconds)
    {
        Assert.True(ConsulDuration.TryParse(text, out var value));
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), value);
    }

    [Theory]
    [InlineData("")]
    [InlineData("10")]
    [InlineData("10 s")]
    [InlineData("s")]
    [InlineData("5x")]
    public void ConsulDuration_TryParse_RejectsOthers(string text) => Assert.False(ConsulDuration.TryParse(text, out _));

    [Theory]
    [InlineData(60_000, "1m")]
    [InlineData(1500, "1500ms")]
    [InlineData(300_000, "5m")]
    [InlineData(90_000, "90s")]
    public void ConsulDuration_Format_SecondsOrMilliseconds(int milliseconds, string expected) =>
        Assert.Equal(expected, ConsulDuration.Format(TimeSpan.FromMilliseconds(milliseconds)));
}
