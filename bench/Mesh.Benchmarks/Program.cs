// Entry point: pick benchmarks with --filter, for example --filter '*RouteMatch*'.
using BenchmarkDotNet.Running;

namespace Mesh.Benchmarks;

/// <summary>Runs the benchmarks selected on the command line.</summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
